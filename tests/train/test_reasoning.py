from __future__ import annotations

import json
from pathlib import Path

from videosearch.corpus.world import load_video_specs
from videosearch.corpus.world_queries import ActorRef, Claim
from videosearch.corpus.world_spec import Actor, Event, VideoSpec
from videosearch.train.reasoning import rewrite_query, verification_reasoning


def _video(scene: str = "garden", first_colour: str = "red", swap: bool = False) -> VideoSpec:
    events = [Event(0, "moves", "left", 1.0, 4.0), Event(1, "grows", "", 5.0, 8.0)]
    if swap:
        events = [Event(1, "grows", "", 1.0, 4.0), Event(0, "moves", "left", 5.0, 8.0)]
    actors = [Actor("circle", first_colour, "small", 30, 16), Actor("square", "blue", "small", 30, 32)]
    return VideoSpec("v", scene, actors, events, 10.0)


CLAIM = Claim("garden", ActorRef("square", "blue", "small"), "grows", "", "after", ActorRef("circle", "red", ""),
              "moves", "left")


def test_a_match_names_what_was_compared_and_the_span() -> None:
    matched, reason, span = verification_reasoning(CLAIM, _video())
    assert matched and span == (5.0, 8.0)
    assert reason.startswith(rewrite_query(CLAIM)), "first the query in the event log's words"
    assert reason.endswith("The video shows exactly this.") and "5.0" not in reason


def test_each_kind_of_mismatch_is_named() -> None:
    cases = {
        "scene": (_video(scene="desert"), "desert"),
        "colour": (_video(first_colour="green"), "No red circle appears"),
        "order": (_video(swap=True), "order"),
    }
    for name, (video, fragment) in cases.items():
        matched, reason, span = verification_reasoning(CLAIM, video)
        assert not matched and span is None and fragment in reason, name
    missing = Claim("garden", ActorRef("triangle", "red", ""), "moves", "left")
    assert "No red triangle appears" in verification_reasoning(missing, _video())[1]
    other_action = Claim("garden", ActorRef("circle", "red", ""), "jumps", "")
    assert "moves left instead" in verification_reasoning(other_action, _video())[1]


def test_reasoning_agrees_with_the_world_ground_truth(small_world: Path) -> None:
    specs = {vid: VideoSpec.from_dict(row) for vid, row in load_video_specs(small_world, "test").items()}
    for line in (small_world / "test.jsonl").read_text().splitlines():
        row = json.loads(line)
        claim = Claim.from_dict(row["claim"])
        for vid, spec in specs.items():
            matched, _, span = verification_reasoning(claim, spec)
            assert matched == (vid == row["video"])
            if matched:
                assert list(span) == row["time"]


def test_rewrite_states_every_detail() -> None:
    assert rewrite_query(CLAIM) == "In the garden, the small blue square grows after the red circle moves left."
