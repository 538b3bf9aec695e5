"""`videosearch train sft-data` on the small world, and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from videosearch.engine import SearchEngine
from videosearch.policy.format import parse_output
from videosearch.policy.frame_encoder import FrameEncoder, FrameEncoderConfig
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
    assert "of the ground truth's family" in stdout
    examples = read_sft_examples(out)
    assert len(examples) == 10 and sum(e.matched for e in examples) == 5
    assert run_cli(*args)[0] == 0 and read_sft_examples(out) == examples


def test_sft_data_with_a_frame_encoder_quotes_its_event_logs(run_cli, small_world: Path, test_index: Path,
                                                            tmp_path: Path) -> None:
    FrameEncoder(FrameEncoderConfig(frame_size=32)).save_pretrained(tmp_path / "encoder")  # untrained: any log
    out = tmp_path / "sft.jsonl"
    code, stdout, err = run_cli("train", "sft-data", "--world", small_world, "--index", test_index, "--out", out,
                                "--split", "test", "--max-examples", "4", "--frame-encoder", tmp_path / "encoder")
    assert code == 0, err
    thinks = [parse_output(e.target).think for e in read_sft_examples(out)]
    assert len(thinks) == 4 and all(" Seen: " in t or " This video is in the " in t for t in thinks), thinks


def test_sft_data_writes_the_sqr_heads_turns(run_cli, small_world: Path, test_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "turns.jsonl"
    code, stdout, err = run_cli("train", "sft-data", "--world", small_world, "--index", test_index, "--out", out,
                                "--split", "test", "--refine-turns", "2", "--max-examples", "12")
    assert code == 0, err
    turns = read_sft_examples(out)
    later = sum(bool(t.seen) for t in turns)
    assert len(turns) == 12 and not any(t.matched for t in turns) and 0 < later < 12
    assert f"wrote 12 not-matched SQR turns to {out}: {12 - later} first turns, {later} later ones" in stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--world", "{missing}", "--index", "{index}"), "world generate"),
        (("--world", "{world}", "--index", "{missing}"), "not an index"),
        (("--world", "{world}", "--index", "{index}", "--split", "val"), "has no spec in this split"),
        (("--world", "{world}", "--index", "{index}", "--split", "dev"), "split='dev'"),
        (("--world", "{world}", "--index", "{index}", "--split", "test", "--hqr-fraction", "2"), "hqr_fraction"),
        (("--world", "{world}", "--index", "{index}", "--split", "test", "--max-examples", "0"), "max_examples"),
        (("--world", "{world}", "--index", "{index}", "--split", "test", "--family-negatives", "1.5"),
         "family_negatives must be in [0, 1]"),
        (("--world", "{world}", "--index", "{index}", "--split", "test", "--refine-turns", "-1"),
         "turns must be >= 1"),
        (("--world", "{world}", "--index", "{index}", "--split", "test", "--frame-encoder", "{missing}"),
         "not a trained frame encoder"),
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


def _user_files(folder: Path) -> dict[str, str]:
    """A folder of a user's files (one of them named like an output of ours); returns what it holds."""
    folder.mkdir()
    files = {"notes.txt": "my notes\n", "config.yaml": "my settings\n", "config.json": '{"mine": 1}\n'}
    for name, text in files.items():
        (folder / name).write_text(text)
    return files


def _holds(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


@pytest.mark.parametrize("trainer", ["sft", "retriever"])
def test_trainers_never_replace_a_folder_of_user_files(run_cli, small_world: Path, test_index: Path, tmp_path: Path,
                                                       trainer: str) -> None:
    examples = tmp_path / "sft.jsonl"
    assert run_cli("train", "sft-data", "--world", small_world, "--index", test_index, "--out", examples,
                   "--split", "test", "--max-examples", "4")[0] == 0
    args = {
        "sft": ("train", "sft", "--data", examples, "--index", test_index, "-o", "policy.preset=tiny-mini",
                "-o", "batch_size=2", "-o", "negatives=10", "--out"),
        "retriever": ("retriever", "train", "--world", small_world, "-o", "epochs=1", "--out"),
    }[trainer]
    folder = tmp_path / "out"
    files = _user_files(folder)
    code, _, err = run_cli(*args, folder)
    assert code == 2 and "refusing to replace" in err and len(err.strip().splitlines()) == 1, err
    assert _holds(folder) == files, "the user's files are untouched"


@pytest.mark.parametrize("text", ["my notes\n", "my notes, no newline at the end"])
def test_sft_data_never_replaces_a_file_that_is_not_sft_examples(run_cli, small_world: Path, test_index: Path,
                                                                 tmp_path: Path, text: str) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text(text)
    for out in (notes, tmp_path):
        code, _, err = run_cli("train", "sft-data", "--world", small_world, "--index", test_index, "--out", out,
                               "--split", "test", "--max-examples", "4")
        assert code == 2 and str(out) in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert notes.read_text() == text
