"""The agent over an index of the release's prepared data: frames from its arrays, at the times of their meta."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from release_layout import write_release_layout

from videosearch.embed import MiniEmbedder
from videosearch.policy.policy import Policy


def test_the_agent_runs_on_an_imported_release_split(small_world: Path, _mini_embedder: MiniEmbedder,
                                                     policy: Policy, run_cli: Callable, tmp_path: Path) -> None:
    release = write_release_layout(small_world, tmp_path / "release", _mini_embedder)
    _mini_embedder.save_pretrained(tmp_path / "embedder")
    policy.save(tmp_path / "policy")
    code, out, err = run_cli("index", "import-release", release, "--out", tmp_path / "index",
                             "--embedder", tmp_path / "embedder")
    assert code == 0 and "with frame arrays" in out, err
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join((release / "raw_annotation" / "test.jsonl").read_text().splitlines(True)[:3]))
    code, out, err = run_cli("agent", "run", tmp_path / "index", "--annotations", queries, "--checkpoint",
                             tmp_path / "policy", "--max-turns", "2", "--refine", "sqr", "--batch-size", "3",
                             "--out", tmp_path / "agent.jsonl")
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "agent.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(r["judgements"] for r in records)
    code, out, err = run_cli("eval", "--pred", tmp_path / "agent.jsonl", "--annotations", queries)
    assert code == 0, err
