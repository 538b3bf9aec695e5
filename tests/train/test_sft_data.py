from __future__ import annotations

import json
from pathlib import Path

import pytest

from videosearch.corpus.annotations import read_moments
from videosearch.corpus.world import load_video_specs
from videosearch.corpus.world_queries import Claim
from videosearch.corpus.world_spec import VideoSpec
from videosearch.engine import SearchEngine
from videosearch.errors import AnnotationError, ConfigError, VideosearchError
from videosearch.policy.event_log import LogEntry
from videosearch.policy.format import parse_output
from videosearch.train.reasoning import rewrite_query
from videosearch.train.sft_data import (
    SFTExample,
    build_sft_examples,
    build_world_refine_turns,
    rank_videos,
    read_reference_sft,
    read_sft_examples,
    write_sft_examples,
)


def _rows(world: Path, split: str = "test") -> list[dict]:
    return [json.loads(line) for line in (world / f"{split}.jsonl").read_text().splitlines()]


def _rankings(world: Path, right_every: int) -> dict[str, list[str]]:
    """The ground truth first for every `right_every`-th query, else second behind another video."""
    videos = sorted(load_video_specs(world, "test"))
    ranked = {}
    for i, row in enumerate(_rows(world)):
        others = [v for v in videos if v != row["video"]]
        wrong = others[i % len(others)]
        rest = [v for v in others if v != wrong]
        ranked[str(row["desc_id"])] = [row["video"], *others] if i % right_every == 0 else [wrong, row["video"], *rest]
    return ranked


def _build(world: Path, ranked: dict[str, list[str]], **kwargs):
    kwargs.setdefault("seed", 0)
    return build_sft_examples(world / "test.jsonl", load_video_specs(world, "test"), ranked, **kwargs)


@pytest.mark.parametrize("right_every", [4, 1])  # most top-1 wrong: add matched; all right: add not matched
def test_examples_are_balanced_and_their_targets_agree_with_the_ground_truth(small_world: Path,
                                                                             right_every: int) -> None:
    ranked = _rankings(small_world, right_every)
    claims = {str(r["desc_id"]): Claim.from_dict(r["claim"]) for r in _rows(small_world)}
    examples, stats = _build(small_world, ranked)
    n_queries = len(_rows(small_world))
    assert stats.queries == n_queries and stats.disagreements == 0
    assert stats.top1_correct == len(range(0, n_queries, right_every))
    assert stats.matched == stats.not_matched == max(stats.top1_correct, n_queries - stats.top1_correct)
    assert len(examples) == 2 * stats.matched and stats.hqr == round(0.25 * len(examples))
    assert sum(e.mode == "hqr" for e in examples) == stats.hqr
    for e in examples:
        assert e.matched == (e.video_id == e.gt_video_id)
        parsed = parse_output(e.target)
        assert parsed.answer == ("matched" if e.matched else "not_matched") and parsed.span_s == e.span_s
        assert e.matched == (e.span_s is not None) and parsed.think
        assert parsed.has_refine == (e.mode == "sqr")
        assert parsed.rewrite == (rewrite_query(claims[e.qid]) if e.mode == "hqr" and not e.matched else None)
        if not e.matched:  # the top-1 when it is wrong, else the highest-ranked wrong video
            ranking = ranked[e.qid]
            assert e.video_id == (ranking[0] if ranking[0] != e.gt_video_id else ranking[1])


def test_the_seed_makes_the_examples_deterministic(small_world: Path) -> None:
    ranked = _rankings(small_world, 4)
    first, _ = _build(small_world, ranked, seed=5)
    assert _build(small_world, ranked, seed=5)[0] == first
    assert _build(small_world, ranked, seed=6)[0] != first


def test_max_examples_keeps_a_balanced_subset(small_world: Path) -> None:
    examples, stats = _build(small_world, _rankings(small_world, 4), max_examples=7, hqr_fraction=0.0)
    assert len(examples) == 7 and (stats.matched, stats.not_matched, stats.hqr) == (4, 3, 0)
    assert all(e.mode == "sqr" for e in examples)


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_family_negatives_replace_that_share_of_the_not_matched_turns(small_world: Path, share: float) -> None:
    specs = load_video_specs(small_world, "test")
    ranked = _rankings(small_world, 4)
    plain, plain_stats = _build(small_world, ranked)
    examples, stats = _build(small_world, ranked, family_negatives=share)
    assert (stats.matched, stats.not_matched, stats.disagreements) == (plain_stats.matched, plain_stats.not_matched, 0)

    def same_family(e: SFTExample) -> list[str]:
        family = specs[e.gt_video_id]["family"]
        return [v for v in ranked[e.qid] if v != e.gt_video_id and specs[v]["family"] == family]

    negatives = [e for e in examples if not e.matched]
    family = [e for e in negatives if e.video_id in same_family(e)]
    assert stats.family_negatives == len(family) >= round(share * stats.not_matched) > plain_stats.family_negatives
    for e in negatives:  # the highest-ranked wrong video, or the highest-ranked one of the ground truth's family
        first_wrong = next(v for v in ranked[e.qid] if v != e.gt_video_id)
        assert e.video_id in (first_wrong, *same_family(e)[:1]) and parse_output(e.target).answer == "not_matched"
    assert len({e.qid for e in examples if not e.matched}) == stats.not_matched  # one not-matched turn a query


def test_inputs_that_cannot_make_sft_data_are_clear_errors(small_world: Path, tmp_path: Path) -> None:
    ranked = _rankings(small_world, 4)
    with pytest.raises(ConfigError, match="hqr_fraction"):
        _build(small_world, ranked, hqr_fraction=1.5)
    with pytest.raises(ConfigError, match="family_negatives"):
        _build(small_world, ranked, family_negatives=-0.1)
    first_qid = str(_rows(small_world)[0]["desc_id"])
    with pytest.raises(VideosearchError, match=f"query {first_qid} .* has no ranking"):
        _build(small_world, {**ranked, first_qid: []})
    with pytest.raises(VideosearchError, match="'val_0000_0' .* has no spec"):
        _build(small_world, {**ranked, first_qid: ["val_0000_0"]})
    plain = tmp_path / "test.jsonl"
    plain.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "claim"}) + "\n"
                             for r in _rows(small_world)))
    with pytest.raises(AnnotationError, match=r"test.jsonl:1: no 'claim'"):
        build_sft_examples(plain, load_video_specs(small_world, "test"), ranked, seed=0)


def test_refine_turns_are_the_walks_not_matched_turns(small_world: Path, engine: SearchEngine,
                                                      tmp_path: Path) -> None:
    engine.save(tmp_path / "index")
    ranked = rank_videos(engine, read_moments(small_world / "test.jsonl").moments, k=10)
    turns = build_world_refine_turns(small_world, tmp_path / "index", "test", turns=2, seed=0)
    assert turns and any(t.seen for t in turns), "later turns are there"
    for t in turns:
        ranking = ranked[t.qid]
        depth = ranking.index(t.video_id)
        assert not t.matched and t.mode == "sqr" and t.video_id != t.gt_video_id and depth < 2
        assert t.seen == tuple(ranking[:depth]) and t.gt_video_id not in t.seen, "the walk's earlier wrong videos"
        assert parse_output(t.target).answer == "not_matched" and parse_output(t.target).has_refine
    first_only = build_world_refine_turns(small_world, tmp_path / "index", "test", turns=1, seed=0)
    assert sorted((t.qid, t.video_id) for t in first_only) == sorted((t.qid, t.video_id) for t in turns if not t.seen)
    assert len(build_world_refine_turns(small_world, tmp_path / "index", "test", max_examples=3)) == 3
    with pytest.raises(ConfigError, match="turns must be >= 1"):
        build_world_refine_turns(small_world, tmp_path / "index", "test", turns=0)


EXAMPLE = SFTExample(qid="7", query="the red circle grows", video_id="v1", gt_video_id="v1", matched=True,
                     span_s=(1.5, 4.0), target="<think>t</think> <answer>matched</answer>", mode="hqr")


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    wrong = SFTExample(**{**EXAMPLE.__dict__, "video_id": "v2", "matched": False, "span_s": None, "mode": "sqr",
                          "seen": ("v3", "v4")})
    path = tmp_path / "sft" / "train.jsonl"
    write_sft_examples(path, [EXAMPLE, wrong])
    assert read_sft_examples(path) == [EXAMPLE, wrong]
    assert [p.name for p in path.parent.iterdir()] == ["train.jsonl"]  # no temporary file left


GOOD = json.dumps({**EXAMPLE.__dict__, "span_s": [1.5, 4.0]})


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ('{"qid": ', "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({k: v for k, v in json.loads(GOOD).items() if k != "target"}), "missing field 'target'"),
        (json.dumps({**json.loads(GOOD), "qid": 7}), "field 'qid' must be a str"),
        (json.dumps({**json.loads(GOOD), "matched": 1}), "field 'matched' must be a bool"),
        (json.dumps({**json.loads(GOOD), "mode": "latent"}), "field 'mode' must be one of sqr, hqr"),
        (json.dumps({**json.loads(GOOD), "span_s": [4.0, 1.5]}), "start <= end"),
        (json.dumps({**json.loads(GOOD), "span_s": [1.0]}), "field 'span_s'"),
        (json.dumps({**json.loads(GOOD), "matched": False}), "not-matched example has a span"),
        (json.dumps({**json.loads(GOOD), "seen": "v3"}), "field 'seen' must be a list of video ids"),
    ],
)
def test_a_bad_line_names_the_file_line_and_the_fault(tmp_path: Path, line: str, fragment: str) -> None:
    path = tmp_path / "sft.jsonl"
    path.write_text(f"{GOOD}\n\n{line}\n")
    with pytest.raises(AnnotationError, match="sft.jsonl:3: ") as info:
        read_sft_examples(path)
    assert fragment in str(info.value)
    with pytest.raises(AnnotationError, match="no such file"):
        read_sft_examples(tmp_path / "missing.jsonl")


def _reference_record(qid: str, query: str, video: str, assistant: str, **meta: str) -> dict:
    """A record shaped like the reference release's `sft_data/train_oneturn.json` (made up here)."""
    return {
        "qid": qid,
        "query": query,
        "messages": [
            {"role": "system", "content": "You check a retrieved video against a query."},
            {"role": "user", "content": f'Query: "{query}"\nRetrieved video: <video>'},
            {"role": "assistant", "content": assistant},
        ],
        "videos": [f"{video}.npy"],
        "meta": {"gold_label": "pos" if "<answer>matched" in assistant else "neg", "video_id": video, **meta},
    }


MATCHED = _reference_record("q1", 'a man says "hi" at the door', "vid_a",
                            "<think> He waves at the door. </think> <answer>matched</answer> "
                            "<start>2.5</start> <end>7.0</end> <REFINE>", query_pos_video_id="vid_a")
NOT_MATCHED = _reference_record("q2", "a dog runs on a beach", "vid_b",
                                "<think> No beach here. </think> <answer>not_matched</answer> <REFINE>")


def test_reads_the_reference_sft_format_as_json_list_or_jsonl(tmp_path: Path) -> None:
    as_list = tmp_path / "train_oneturn.json"
    as_list.write_text(json.dumps([MATCHED, NOT_MATCHED], indent=2))
    as_lines = tmp_path / "train_oneturn.jsonl"
    as_lines.write_text(f"{json.dumps(MATCHED)}\n{json.dumps(NOT_MATCHED)}\n")
    for path in (as_list, as_lines):
        matched, not_matched = read_reference_sft(path)
        assert matched == SFTExample("q1", 'a man says "hi" at the door', "vid_a", "vid_a", True, (2.5, 7.0),
                                     MATCHED["messages"][2]["content"], "sqr")
        assert (not_matched.video_id, not_matched.gt_video_id, not_matched.matched, not_matched.span_s) == \
               ("vid_b", "", False, None)
    named = _reference_record("q3", "a cat", "vid_c", NOT_MATCHED["messages"][2]["content"],
                              query_pos_video_id="vid_d")
    as_list.write_text(json.dumps([named]))
    assert read_reference_sft(as_list)[0].gt_video_id == "vid_d"


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ("not a record", "expected a JSON object"),
        ({**MATCHED, "messages": "hello"}, "field 'messages' must be a list"),
        ({**MATCHED, "messages": MATCHED["messages"][:2]}, "one 'assistant' message"),
        ({**MATCHED, "messages": [MATCHED["messages"][0], {"role": "user", "content": "find a man"},
                                  MATCHED["messages"][2]]}, "no 'Query:"),
        ({**MATCHED, "videos": []}, "field 'videos'"),
        ({**MATCHED, "messages": [*MATCHED["messages"][:2], {"role": "assistant", "content": "<answer>yes</answer>"}]},
         "no <answer>"),
        ({**MATCHED, "qid": ""}, "field 'qid'"),
    ],
)
def test_a_malformed_reference_record_is_a_clear_error(tmp_path: Path, record: object, fragment: str) -> None:
    path = tmp_path / "train_oneturn.json"
    path.write_text(json.dumps([NOT_MATCHED, record]))
    with pytest.raises(AnnotationError, match="train_oneturn.json:2: ") as info:
        read_reference_sft(path)
    assert fragment in str(info.value)
    path.write_text('[{"qid": "q1",\n "messages": }]')
    with pytest.raises(AnnotationError, match="train_oneturn.json:2: invalid JSON"):
        read_reference_sft(path)


def test_with_event_logs_each_kept_turn_quotes_its_videos_log(small_world: Path) -> None:
    specs = {vid: VideoSpec.from_dict(row) for vid, row in load_video_specs(small_world, "test").items()}
    read = []

    def logs(video_id: str) -> tuple[str, list[LogEntry]]:
        read.append(video_id)
        return specs[video_id].scene, [LogEntry(1.0, 2.5, "small", "red", "circle", "moves", "left")]

    examples, stats = _build(small_world, _rankings(small_world, 4), logs=logs, max_examples=6)
    assert stats.disagreements == 0 and set(read) == {e.video_id for e in examples}, "only the kept turns' videos"
    truth = {str(r["desc_id"]): tuple(r["time"]) for r in _rows(small_world)}
    for e in examples:
        think = parse_output(e.target).think
        assert e.matched == (e.video_id == e.gt_video_id)
        assert " Seen: " in think or think.endswith(f"This video is in the {specs[e.video_id].scene}."), think
        if e.matched:  # the log's span where its entry shows the claim, else the truth's
            assert e.span_s == ((1.0, 2.5) if think.endswith("It matches.") else truth[e.qid]), think
