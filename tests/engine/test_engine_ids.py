"""Video ids: every file's id is checked before decoding; bad ones are skipped with the reason, the rest indexed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from videosearch.embed import MiniEmbedder
from videosearch.engine import SearchEngine
from videosearch.engine.engine import assign_ids, printable_path

NON_UTF8 = os.fsdecode(b"caf\xe9.mp4")  # a Latin-1 name: not UTF-8


@pytest.fixture
def clips(small_world: Path) -> list[Path]:
    return sorted((small_world / "videos" / "val").glob("*.mp4"))


def reasons(skipped: list) -> dict[str, str]:
    return {Path(s.path).name: s.reason for s in skipped}


def test_odd_names_are_skipped_with_the_reason_and_the_rest_indexed(clips: list[Path], tmp_path: Path,
                                                                     mini_embedder: MiniEmbedder) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name, clip in [("a.mp4", 0), ("a.mkv", 1), ("b.mp4", 2), ("bad\nname.mp4", 3), (NON_UTF8, 4),
                       ("c.mp4", 5)]:
        shutil.copy(clips[clip], folder / name)
    # batch_size=1: "a.mkv" and "a.mp4" fall in different batches, where the second used to replace the first.
    engine, result = SearchEngine.build(folder, mini_embedder, batch_size=1)
    assert sorted(engine.video_ids) == ["b", "c"]
    why = reasons(result.skipped)
    assert sorted(why) == ["a.mkv", "a.mp4", "bad\\nname.mp4", "caf\\xe9.mp4"]
    assert "also the id of a.mp4" in why["a.mkv"] and "also the id of a.mkv" in why["a.mp4"]
    assert "control" in why["bad\\nname.mp4"] and "not valid UTF-8" in why["caf\\xe9.mp4"]
    assert all("rename" in reason for reason in why.values())


def test_an_id_indexed_from_another_file_is_skipped_unless_replace(engine: SearchEngine, clips: list[Path],
                                                                    small_world: Path, tmp_path: Path) -> None:
    indexed = engine.video_ids[0]
    impostor = tmp_path / f"{indexed}.mp4"
    shutil.copy(clips[0], impostor)
    before = engine.store.get_vectors([indexed])
    result = engine.add_videos([impostor, clips[1]])
    assert (result.added, result.replaced) == ([clips[1].stem], [])
    assert reasons(result.skipped)[impostor.name].startswith(f"id {indexed!r} is already indexed from ")
    assert (engine.store.get_vectors([indexed]) == before).all()
    assert engine.video_info(indexed)["path"] == str((small_world / "videos" / "test" / f"{indexed}.mp4").resolve())

    result = engine.add_videos([impostor], replace=True)
    assert (result.added, result.replaced, result.skipped) == ([], [indexed], [])
    assert engine.video_info(indexed)["path"] == str(impostor.resolve())

    again = engine.add_videos([clips[1]])  # the same file again is re-indexed, and said so
    assert (again.added, again.replaced, again.skipped) == ([], [clips[1].stem], [])


def test_ids_are_assigned_before_any_decoding(tmp_path: Path) -> None:
    files = [tmp_path / n for n in ("x.mp4", "y.webm", "x.mov", "z" * 600 + ".mp4")]
    accepted, skipped = assign_ids(files)
    assert accepted == [("y", files[1])]
    assert sorted(reasons(skipped)) == ["x.mov", "x.mp4", "z" * 600 + ".mp4"]
    assert "longer than 512" in reasons(skipped)["z" * 600 + ".mp4"]
    assert printable_path(Path(NON_UTF8)) == "caf\\xe9.mp4"
