"""The `videosearch` commands end to end on the small world, and their one-line errors."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from videosearch import shipped
from videosearch.embed import MiniEmbedder


@pytest.fixture
def index_dir(run_cli, tmp_path: Path, small_world: Path, mini_embedder: MiniEmbedder,
) -> Path:
    mini_embedder.save_pretrained(tmp_path / "embedder")
    code, out, err = run_cli("index", "build", "--videos", small_world / "videos" / "test",
                             "--embedder", tmp_path / "embedder", "--out", tmp_path / "index")
    assert code == 0, err
    assert "indexed 12 videos" in out
    return tmp_path / "index"


def test_search_baseline_eval_and_oracle(run_cli, index_dir: Path, small_world: Path, tmp_path: Path) -> None:
    code, out, _ = run_cli("search", index_dir, "the red circle moves left", "-k", "3", "--json")
    hits = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(hits) == 3 and hits[0]["score"] >= hits[1]["score"]

    annotations = small_world / "test.jsonl"
    code, out, err = run_cli("baseline", "run", index_dir, "--annotations", annotations,
                             "--out", tmp_path / "new" / "pred.jsonl")  # a folder not made yet is made
    assert code == 0, err
    (tmp_path / "new" / "pred.jsonl").rename(tmp_path / "pred.jsonl")
    first = json.loads((tmp_path / "pred.jsonl").read_text().splitlines()[0])
    assert len(first["ranking"]) == 12 and first["judgements"][0]["answer"] == "matched"

    code, out, _ = run_cli("eval", "--pred", tmp_path / "pred.jsonl", "--annotations",
                           annotations, "--json")
    metrics = json.loads(out)
    assert code == 0 and metrics["vr@100"] == 100.0 and 0 <= metrics["vr@1"] <= 100

    code, out, _ = run_cli("retriever", "oracle-refine", index_dir, "--annotations", annotations,
                           "--limit", "4", "--steps", "3", "--json")
    result = json.loads(out)
    assert code == 0 and result["queries"] == 4 and {"plain_R@1", "oracle_R@1"} <= set(result)


def test_index_add_extends_without_rebuild(run_cli, index_dir: Path, small_world: Path) -> None:
    code, out, _ = run_cli("index", "add", index_dir, "--videos", small_world / "videos" / "val")
    assert code == 0 and "now holds 20 videos" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("search", "{missing}", "a query"), "does not exist, so it is not an index"),
        (("search", "{index}", "   "), "empty"),
        (("search", "{index}", "a query", "-k", "0"), "k must be"),
        (("index", "build", "--videos", "{missing}", "--out", "{tmp}/x", "--embedder", "{tmp}/embedder"), "missing"),
        (("index", "build", "--videos", "{tmp}", "--out", "{tmp}/x", "--embedder", "{missing}"), "retriever train"),
        (("index", "build", "--videos", "{tmp}", "--out", "{tmp}/x", "--embedder", "{damaged}"), "damaged embedder"),
        (("index", "build", "--videos", "{tmp}", "--out", "{tmp}/x", "--embedder", "{tmp}/embedder",
          "--backend", "elastic"), "backend"),
        (("baseline", "run", "{index}", "--annotations", "{missing}", "--out", "{tmp}/p.jsonl"), "missing"),
        (("retriever", "train", "--world", "{missing}", "--out", "{tmp}/r"), "world generate"),
        (("retriever", "train", "--world", "{tmp}", "-o", "epochs"), "key=value"),
        (("world", "generate", "--out", "{tmp}/w", "--size", "huge"), "small"),
    ],
)
def test_user_errors_are_one_line_without_traceback(run_cli, args: tuple[str, ...], fragment: str, index_dir: Path,
                                                    tmp_path: Path) -> None:
    shutil.copytree(tmp_path / "embedder", tmp_path / "damaged")
    (tmp_path / "damaged" / "config.json").write_text('{"kind": "mini", "video_tow')
    values = {"index": index_dir, "missing": tmp_path / "missing", "tmp": tmp_path, "damaged": tmp_path / "damaged"}
    code, _, err = run_cli(*(a.format(**values) for a in args))
    assert code == 2, err
    assert fragment in err and "Traceback" not in err


def test_index_build_refuses_to_write_over_the_videos_folder(run_cli, tmp_path: Path, small_world: Path,
                                                            mini_embedder: MiniEmbedder) -> None:
    mini_embedder.save_pretrained(tmp_path / "embedder")
    videos = tmp_path / "videos"
    videos.mkdir()
    for clip in sorted((small_world / "videos" / "test").glob("*.mp4"))[:4]:
        shutil.copy(clip, videos)
    (videos / "notes.txt").write_text("my notes")
    before = {p.name: p.read_bytes() for p in videos.iterdir()}
    code, _, err = run_cli("index", "build", "--videos", videos, "--out", videos, "--embedder", tmp_path / "embedder")
    assert code == 2 and "holds no engine.json" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in videos.iterdir()} == before


def test_index_build_uses_the_shipped_retriever(run_cli, tmp_path: Path, small_world: Path,
                                                mini_embedder: MiniEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    monkeypatch.setattr(shipped, "REPO_ROOT", repo)
    videos = tmp_path / "videos"
    videos.mkdir()
    for clip in sorted((small_world / "videos" / "test").glob("*.mp4"))[:2]:
        shutil.copy(clip, videos)
    code, _, err = run_cli("index", "build", "--videos", videos, "--out", tmp_path / "index")
    message = " ".join(err.split())
    assert code == 2 and "Traceback" not in err, err
    assert f"no shipped checkpoint at {repo / 'checkpoints' / 'mini' / 'retriever'}" in message
    assert "--embedder" in message and "make train" in message and not (tmp_path / "index").exists()
    mini_embedder.save_pretrained(repo / "checkpoints" / "mini" / "retriever")
    code, out, err = run_cli("index", "build", "--videos", videos, "--out", tmp_path / "index")
    assert code == 0 and "indexed 2 videos" in out, err


def test_index_build_and_add_skip_bad_names_and_say_why(run_cli, index_dir: Path, tmp_path: Path,
                                                        small_world: Path) -> None:
    clips = sorted((small_world / "videos" / "val").glob("*.mp4"))
    videos = tmp_path / "odd"
    videos.mkdir()
    for name, clip in [("a.mp4", 0), ("a.mkv", 1), ("new\nline.mp4", 2), (os.fsdecode(b"\xff.mp4"), 3),
                       ("ok.mp4", 4), ("test_0000_0.mp4", 5)]:
        shutil.copy(clips[clip], videos / name)
    code, out, err = run_cli("index", "build", "--videos", videos, "--out", tmp_path / "odd_index",
                             "--embedder", tmp_path / "embedder")
    assert code == 0, err
    assert "indexed 2 videos" in out and "(4 skipped)" in out and "Traceback" not in err
    skipped = [line for line in err.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 4 and any("new\\nline.mp4" in line for line in skipped)

    code, out, err = run_cli("index", "add", index_dir, "--videos", videos)
    assert code == 0, err
    assert "now holds 13 videos (1 added, 0 replaced, 5 skipped)" in out
    assert "test_0000_0.mp4: id 'test_0000_0' is already indexed from" in err
    code, out, err = run_cli("index", "add", index_dir, "--videos", videos, "--replace")
    assert code == 0 and "now holds 13 videos (0 added, 2 replaced, 4 skipped)" in out
    assert "replaced test_0000_0" in err


@pytest.mark.parametrize("text", ["my notes, no newline at the end", "my notes\n", "{not ours"])
def test_baseline_run_never_replaces_a_file_that_is_not_predictions(run_cli, index_dir: Path, small_world: Path,
                                                                     tmp_path: Path, text: str) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text(text)
    code, _, err = run_cli("baseline", "run", index_dir, "--annotations", small_world / "test.jsonl", "--out", notes)
    assert code == 2 and "Traceback" not in err and str(notes) in err.strip().splitlines()[-1], err
    assert notes.read_text() == text


def test_baseline_run_replaces_its_own_predictions(run_cli, index_dir: Path, small_world: Path,
                                                   tmp_path: Path) -> None:
    args = ("baseline", "run", index_dir, "--annotations", small_world / "test.jsonl", "--out", tmp_path / "p.jsonl")
    assert run_cli(*args)[0] == 0
    lines = (tmp_path / "p.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "p.jsonl").write_text(lines[0])  # an older, shorter predictions file
    code, _, err = run_cli(*args)
    assert code == 0 and len((tmp_path / "p.jsonl").read_text().splitlines()) == len(lines), err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "no temporary files left"
