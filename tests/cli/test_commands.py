"""The `videosearch` commands end to end on the small world, and their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
                             "--out", tmp_path / "pred.jsonl")
    assert code == 0, err
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
        (("search", "{missing}", "a query"), "engine.json"),
        (("search", "{index}", "   "), "empty"),
        (("search", "{index}", "a query", "-k", "0"), "k must be"),
        (("index", "build", "--videos", "{missing}", "--out", "{tmp}/x", "--embedder", "{tmp}/embedder"), "missing"),
        (("index", "build", "--videos", "{tmp}", "--out", "{tmp}/x", "--embedder", "{missing}"), "retriever train"),
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
    values = {"index": index_dir, "missing": tmp_path / "missing", "tmp": tmp_path}
    code, _, err = run_cli(*(a.format(**values) for a in args))
    assert code == 2, err
    assert fragment in err and "Traceback" not in err
