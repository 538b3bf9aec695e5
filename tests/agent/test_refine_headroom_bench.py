"""`bench/refine_headroom.py` on the small world: every refinement is walked, the SQR latents' spread is measured,
the last line is JSON, and an index of the wrong videos ends in a one-line error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from videosearch.engine import SearchEngine
from videosearch.policy.policy import Policy
from videosearch.train.sft_data import build_world_sft_data, write_sft_examples

ROWS = ("walk", "away_from_shown_0.1", "away_from_shown_0.3", "rewrite", "linear_q", "linear_q_shown",
        "latent_prompt", "latents_from_q")



def test_every_refinement_is_walked_and_the_latents_measured(load_bench: Callable[[str], ModuleType],
                                                             engine: SearchEngine, policy: Policy,
                                                             small_world: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    engine.save(tmp_path / "test_index")
    train_engine, _ = SearchEngine.build(small_world / "videos" / "train", engine.embedder)
    train_engine.save(tmp_path / "train_index")
    examples, _ = build_world_sft_data(small_world, tmp_path / "test_index", "test", seed=0, max_examples=6)
    write_sft_examples(tmp_path / "sft.jsonl", examples)
    policy.save(tmp_path / "policy")
    args = ["--world", str(small_world), "--train-index", str(tmp_path / "train_index"), "--index",
            str(tmp_path / "test_index"), "--linear-steps", "3", "--latent-steps", "2", "--checkpoint",
            str(tmp_path / "policy"), "--data", str(tmp_path / "sft.jsonl"),
            "--data-index", str(tmp_path / "test_index")]
    assert load_bench("refine_headroom").main(args) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert all(0.0 <= result[row] <= 100.0 for row in ROWS)
    queries = _queries(small_world)
    one_turn = 100.0 * sum(engine.search(q, k=1)[0].video_id == v for q, v in queries) / len(queries)
    assert result["walk"] >= one_turn - 1e-6, "three turns with a perfect judge find at least what one finds"
    spread = result["latent_spread"]
    assert -1.0 <= spread["z1"] <= 1.0 and spread["inserted_latent_norm"] > 0


def _queries(world: Path) -> list[tuple[str, str]]:
    lines = [json.loads(line) for line in (world / "test.jsonl").read_text().splitlines() if line]
    return [(a["fig_desc"], a["video"]) for a in lines]


def test_an_index_of_other_videos_is_a_one_line_error(load_bench: Callable[[str], ModuleType],
                                                      engine: SearchEngine, small_world: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    engine.save(tmp_path / "test_index")  # given as the train split's index: it holds none of its videos
    args = ["--world", str(small_world), "--train-index", str(tmp_path / "test_index"), "--index",
            str(tmp_path / "test_index")]
    code = load_bench("refine_headroom").main(args)
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the weights' loading bar
    assert code == 2 and err.startswith("error:") and "holds none of the videos" in err and "train.jsonl" in err
