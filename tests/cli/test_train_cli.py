"""`videosearch train sft-data` on the small world, and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from videosearch.engine import SearchEngine
from videosearch.train.sft_data import read_sft_examples


@pytest.fixture
def test_index(engine: SearchEngine, tmp_path: Path) -> Path:
    """An index over the small world's test videos."""
    engine.save(tmp_path / "index")
    return tmp_path / "index"


def test_sft_data_writes_balanced_examples(run_cli, small_world: Path, test_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft" / "test.jsonl"
    args = ("train", "sft-data", "--world", small_world, "--index", test_index, "--out", out, "--split", "test",
            "--seed", "1", "--hqr-fraction", "0.5", "--max-examples", "10")
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    assert "wrote 10 examples" in stdout and "5 matched, 5 not matched, 5 hqr" in stdout
    examples = read_sft_examples(out)
    assert len(examples) == 10 and sum(e.matched for e in examples) == 5
    assert run_cli(*args)[0] == 0 and read_sft_examples(out) == examples


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--world", "{missing}", "--index", "{index}"), "world generate"),
        (("--world", "{world}", "--index", "{missing}"), "engine.json"),
        (("--world", "{world}", "--index", "{index}", "--split", "val"), "has no spec in this split"),
        (("--world", "{world}", "--index", "{index}", "--split", "dev"), "split='dev'"),
        (("--world", "{world}", "--index", "{index}", "--split", "test", "--hqr-fraction", "2"), "hqr_fraction"),
    ],
)
def test_sft_data_errors_are_one_line(run_cli, args: tuple[str, ...], fragment: str, small_world: Path,
                                      test_index: Path, tmp_path: Path) -> None:
    values = {"world": small_world, "index": test_index, "missing": tmp_path / "missing"}
    code, _, err = run_cli("train", "sft-data", *(a.format(**values) for a in args),
                           "--out", tmp_path / "sft.jsonl")
    assert code == 2, err
    assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "sft.jsonl").exists()
