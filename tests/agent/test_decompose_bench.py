"""`bench/decompose.py` on the small world with a tiny policy: every setting runs, the figures hang together, the
tables fit 80 columns, the last line is JSON, and a rerun reuses the predictions files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from videosearch.engine import SearchEngine
from videosearch.policy.policy import Policy


def test_decompose_runs_every_setting_and_resumes(load_bench: Callable[[str], ModuleType], engine: SearchEngine,
                                                  policy: Policy, small_world: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    engine.save(tmp_path / "index")
    policy.config.max_new_tokens = 16  # room for the oracle judge's forced verdict, spelled out by the tiny tokenizer
    policy.save(tmp_path / "policy")
    bench = load_bench("decompose")
    args = ["--index", str(tmp_path / "index"), "--annotations", str(small_world / "test.jsonl"), "--checkpoint",
            str(tmp_path / "policy"), "--out", str(tmp_path / "out"), "--limit", "3", "--oracle-steps", "2"]
    assert bench.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines[:-1]) <= 80, "\n".join(lines)
    result = json.loads(lines[-1])
    assert result["queries"] == 3 and set(result["runs"]) == {f"{j}/{r}" for j in ("policy", "oracle")
                                                              for r in ("none", "hqr", "sqr", "oracle")}
    files = sorted(p.name for p in (tmp_path / "out" / "limit-3").iterdir())
    assert files == sorted(f"{j}-{r}-t3.jsonl" for j in ("policy", "oracle") for r in ("none", "hqr", "sqr", "oracle"))
    for name, by_turn in result["runs"].items():
        assert set(by_turn) == {"1", "2", "3"}
        for figures in by_turn.values():
            assert figures["vr@1_ci_low"] <= figures["vr@1"] <= figures["vr@1_ci_high"]
            assert figures["mean_turns"] <= 3
        if name.startswith("oracle/"):  # balanced accuracy is null while one class was never judged
            assert all(figures["ver"] == 100.0 for figures in by_turn.values())
            assert all(figures["ver_balanced"] in (100.0, None) for figures in by_turn.values())
        if name == "oracle/none":  # a perfect judge walking down the ranking: VR R@1 at t turns is R@t
            assert by_turn["1"]["vr@1"] <= by_turn["2"]["vr@1"] <= by_turn["3"]["vr@1"]
    for judge in ("policy", "oracle"):  # the first turn is the same whatever comes after it (hqr prompts differently)
        firsts = {json.dumps(result["runs"][f"{judge}/{r}"]["1"]) for r in ("none", "sqr", "oracle")}
        assert len(firsts) == 1
    assert result["baseline"]["ver"] is None and result["baseline"]["ver_balanced"] is None
    assert result["baseline"]["mean_turns"] == 1.0
    assert set(result["paired"]) == {f"{j}/{r}" for j in ("policy", "oracle") for r in ("hqr", "sqr", "oracle")}
    for deltas in result["paired"].values():
        assert all(d["ci_low"] <= d["delta"] <= d["ci_high"] for d in deltas.values())

    before = {p.name: p.read_text() for p in (tmp_path / "out" / "limit-3").iterdir()}
    assert bench.main(args) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == result
    assert {p.name: p.read_text() for p in (tmp_path / "out" / "limit-3").iterdir()} == before, "reused"


def test_decompose_without_a_checkpoint_is_a_clear_error(load_bench: Callable[[str], ModuleType],
                                                         engine: SearchEngine, small_world: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from videosearch import shipped

    monkeypatch.setattr(shipped, "REPO_ROOT", tmp_path / "repo")
    engine.save(tmp_path / "index")
    code = load_bench("decompose").main(["--index", str(tmp_path / "index"), "--annotations",
                                         str(small_world / "test.jsonl"), "--limit", "2"])
    assert code == 2 and "no shipped checkpoint at" in capsys.readouterr().err
