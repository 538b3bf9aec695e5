"""Index folders: never replace what is not an index, fsync what is published, survive a save killed midway,
and name the file when one is corrupt."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from videosearch import folders
from videosearch.embed import MiniEmbedder
from videosearch.engine import SearchEngine
from videosearch.engine.engine import IndexFileError
from videosearch.errors import VideosearchError
from videosearch.folders import FolderInUseError

QUERY = "the red circle moves to the left"


def ranking(engine: SearchEngine) -> list[str]:
    return [hit.video_id for hit in engine.search(QUERY, k=len(engine))]


def dead_pid() -> int:
    """The id of a process that has exited."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_save_refuses_a_folder_that_is_not_an_index(engine: SearchEngine, tmp_path: Path) -> None:
    user = tmp_path / "videos"
    user.mkdir()
    (user / "holiday.mp4").write_bytes(b"precious")
    (user / "notes.txt").write_text("mine")
    with pytest.raises(FolderInUseError, match="holds no engine.json.*choose a new or empty folder"):
        engine.save(user)
    assert sorted(p.name for p in user.iterdir()) == ["holiday.mp4", "notes.txt"]
    assert (user / "holiday.mp4").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["videos"], "nothing written beside it either"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FolderInUseError, match="is a file"):
        engine.save(tmp_path / "file")

    (tmp_path / "empty").mkdir()
    engine.save(tmp_path / "empty")  # an empty folder and an existing index may be written
    engine.remove_videos(engine.video_ids[:2])
    engine.save(tmp_path / "empty")
    assert len(SearchEngine.load(tmp_path / "empty")) == len(engine)


def test_save_fsyncs_every_published_file_and_the_parent(engine: SearchEngine, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def record(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(folders.os, "fsync", record)
    engine.save(tmp_path / "index")
    tmp = str(folders.tmp_sibling(tmp_path / "index"))
    published = {str(p.relative_to(tmp_path / "index")) for p in (tmp_path / "index").rglob("*")}
    assert {"engine.json", "segments.npz", "embedder", "embedder/config.json", "store"} <= published
    assert published <= {os.path.relpath(p, tmp) for p in synced if p.startswith(tmp + "/")}
    assert str(tmp_path) in synced, "the parent folder is fsynced after the rename"


def interrupt_second_rename(monkeypatch: pytest.MonkeyPatch, out: Path) -> None:
    """Make the rename of the finished temporary folder onto `out` fail as if the process had been killed."""
    real_rename = os.rename

    def rename(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst) == out and Path(src) == folders.tmp_sibling(out):
            raise KeyboardInterrupt
        real_rename(src, dst)

    monkeypatch.setattr(folders.os, "rename", rename)


def test_a_save_killed_between_the_renames_is_finished_on_load(engine: SearchEngine, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "index"
    engine.save(out)
    engine.remove_videos(engine.video_ids[:3])
    interrupt_second_rename(monkeypatch, out)
    with pytest.raises(KeyboardInterrupt):
        engine.save(out)
    monkeypatch.undo()
    assert not out.exists() and (folders.aside_sibling(out) / "engine.json").is_file()
    loaded = SearchEngine.load(out)  # the new index was complete and fsynced: it is moved in
    assert sorted(loaded.video_ids) == sorted(engine.video_ids)
    loaded.save(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index"], "the next save removes the leftovers"


def test_without_the_new_folder_the_previous_index_is_restored(engine: SearchEngine, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "index"
    engine.save(out)
    before = sorted(engine.video_ids)
    engine.remove_videos(engine.video_ids[:3])
    interrupt_second_rename(monkeypatch, out)
    with pytest.raises(KeyboardInterrupt):
        engine.save(out)
    monkeypatch.undo()
    (folders.tmp_sibling(out) / "engine.json").unlink()
    assert sorted(SearchEngine.load(out).video_ids) == before


def test_two_loads_restoring_at_once_both_succeed(engine: SearchEngine, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "index"
    engine.save(out)
    interrupt_second_rename(monkeypatch, out)
    with pytest.raises(KeyboardInterrupt):
        engine.save(out)
    monkeypatch.undo()
    real_rename = os.rename

    def another_process_wins(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        real_rename(src, dst)  # the other loader restores the folder first; ours then finds no source
        raise FileNotFoundError(src)

    monkeypatch.setattr(folders.os, "rename", another_process_wins)
    assert sorted(SearchEngine.load(out).video_ids) == sorted(engine.video_ids)


def test_a_save_in_progress_elsewhere_is_not_touched(engine: SearchEngine, tmp_path: Path) -> None:
    out = tmp_path / "index"
    engine.save(out)
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.rename(out, folders.aside_sibling(out, writer.pid))
        with pytest.raises(VideosearchError, match=f"being saved by process {writer.pid}"):
            SearchEngine.load(out)
        assert folders.aside_sibling(out, writer.pid).is_dir()
    finally:
        writer.kill()
        writer.wait()


def test_leftovers_of_dead_writers_are_removed_on_the_next_save(engine: SearchEngine, tmp_path: Path) -> None:
    out = tmp_path / "index"
    engine.save(out)
    gone = dead_pid()
    for leftover in (folders.tmp_sibling(out, gone), folders.aside_sibling(out, gone)):
        leftover.mkdir()
        (leftover / "segments.npz").write_bytes(b"half")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folders.tmp_sibling(out, live.pid).mkdir()
        engine.save(out)
        assert sorted(tmp_path.iterdir()) == sorted([out, folders.tmp_sibling(out, live.pid)])
    finally:
        live.kill()
        live.wait()


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def rename_a_segment_id(path: Path) -> None:
    with np.load(path) as npz:
        data = {name: npz[name] for name in npz.files}
    data["ids"] = np.array(["not_in_the_store", *data["ids"][1:].tolist()])
    np.savez(path, **data)


CORRUPTIONS: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "truncated engine.json": ("engine.json", truncate, "engine.json: unreadable"),
    "engine.json not an object": ("engine.json", lambda p: p.write_text("[]"), "engine.json: not an index manifest"),
    "truncated segments.npz": ("segments.npz", truncate, "segments.npz: unreadable"),
    "empty segments.npz": ("segments.npz", lambda p: p.write_bytes(b""), "segments.npz: unreadable"),
    "segment ids differ": ("segments.npz", rename_a_segment_id, "segments.npz: its video ids differ"),
    "truncated embedder config": ("embedder/config.json", truncate, "embedder: the embedder copy is unreadable"),
    "truncated embedder weights": ("embedder/video_tower.safetensors", truncate, "embedder: the embedder copy"),
    "truncated store ids": ("store/ids.npy", truncate, "store: cannot read the FAISS files"),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_a_corrupt_file_is_our_error_naming_it(engine: SearchEngine, tmp_path: Path, case: str) -> None:
    name, corrupt, message = CORRUPTIONS[case]
    engine.save(tmp_path / "index")
    corrupt(tmp_path / "index" / name)
    with pytest.raises(VideosearchError, match=f"{tmp_path / 'index'}/{message}"):
        SearchEngine.load(tmp_path / "index")


def test_a_corrupt_index_is_one_line_from_the_cli(engine: SearchEngine, tmp_path: Path, run_cli) -> None:
    engine.save(tmp_path / "index")
    (tmp_path / "index" / "segments.npz").write_bytes(b"")
    code, _, err = run_cli("search", tmp_path / "index", QUERY)
    assert code == 2 and "segments.npz: unreadable" in err and "Traceback" not in err
    assert isinstance(IndexFileError("x", "y"), VideosearchError)


@pytest.mark.parametrize(("change", "message"), [({"format_version": 99}, "index format 99"),
                                                ({"videos": 3}, "counts 3 videos but segments.npz holds 12")])
def test_a_manifest_that_does_not_fit_is_refused(engine: SearchEngine, tmp_path: Path, change: dict,
                                                 message: str) -> None:
    engine.save(tmp_path / "index")
    manifest = tmp_path / "index" / "engine.json"
    manifest.write_text(json.dumps(json.loads(manifest.read_text()) | change))
    with pytest.raises(IndexFileError, match=message):
        SearchEngine.load(tmp_path / "index")


def test_round_trip_keeps_rankings_and_segments(engine: SearchEngine, tmp_path: Path) -> None:
    engine.save(tmp_path / "index")
    loaded = SearchEngine.load(tmp_path / "index")
    assert ranking(loaded) == ranking(engine)
    vid = engine.video_ids[0]
    assert loaded.video_info(vid) == engine.video_info(vid)


def test_a_users_backup_beside_the_index_is_never_taken_for_a_leftover(engine: SearchEngine, tmp_path: Path) -> None:
    out = tmp_path / "index"
    for backup in ("index.old-20240501", "index.tmp-1", ".index.old-2"):  # named like our siblings once were
        (tmp_path / backup).mkdir()
        (tmp_path / backup / "engine.json").write_text("{}")
    engine.save(out)
    engine.save(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".index.old-2", "index", "index.old-20240501", "index.tmp-1"]


def test_an_index_path_that_is_a_symbolic_link_is_refused_untouched(engine: SearchEngine, tmp_path: Path) -> None:
    engine.save(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(VideosearchError, match=f"symbolic link: give the folder it points to, {tmp_path / 'real'}"):
        engine.save(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_a_dead_writers_set_aside_copy_goes_once_the_folder_is_written_again(engine: SearchEngine,
                                                                            tmp_path: Path) -> None:
    out = tmp_path / "index"
    engine.save(out)
    os.rename(out, folders.aside_sibling(out, dead_pid()))  # a writer killed between its renames, no new folder
    (tmp_path / "index").mkdir()  # ...and the folder made again empty, so nothing is restored from the copy
    engine.save(out)
    assert sorted(tmp_path.iterdir()) == [out], "the stale copy is removed after the swap"


def test_an_unfinished_build_is_refused_then_resumed_without_embedding_again(small_world: Path, tmp_path: Path,
                                                                            mini_embedder: MiniEmbedder,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    videos = small_world / "videos" / "test"
    reference, _ = SearchEngine.build(videos, mini_embedder)
    embedded: list[str] = []
    real = SearchEngine.add_videos

    def add_then_die(self: SearchEngine, paths: list, *args: object, **kwargs: object) -> object:
        if embedded:
            raise KeyboardInterrupt  # killed while indexing the second chunk
        embedded.extend(p.stem for p in paths)
        return real(self, paths, *args, **kwargs)

    monkeypatch.setattr(SearchEngine, "add_videos", add_then_die)
    with pytest.raises(KeyboardInterrupt):
        SearchEngine.build_into(tmp_path / "index", videos, mini_embedder, save_every=4)
    with pytest.raises(VideosearchError, match="stopped after 4 videos: run the same `videosearch index build`"):
        SearchEngine.load(tmp_path / "index")
    seen: list[str] = []

    def add_and_note(self: SearchEngine, paths: list, *args: object, **kwargs: object) -> object:
        seen.extend(p.stem for p in paths)
        return real(self, paths, *args, **kwargs)

    monkeypatch.setattr(SearchEngine, "add_videos", add_and_note)
    engine, result = SearchEngine.build_into(tmp_path / "index", videos, mini_embedder, save_every=4)
    assert not set(seen) & set(embedded) and len(result.added) == len(reference) - 4  # the first 4 were kept
    loaded = SearchEngine.load(tmp_path / "index")
    ids = sorted(reference.video_ids)
    assert sorted(loaded.video_ids) == ids
    np.testing.assert_allclose(loaded.store.get_vectors(ids), reference.store.get_vectors(ids), atol=1e-6)
    loaded.save(tmp_path / "index", finished=False)  # an unfinished build of another embedder is not resumed
    with pytest.raises(VideosearchError, match="unfinished build with embedder"):
        SearchEngine.build_into(tmp_path / "index", videos, MiniEmbedder(), save_every=4)
