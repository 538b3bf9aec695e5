from __future__ import annotations

import json
from pathlib import Path

from videosearch.corpus.world import load_video_specs
from videosearch.corpus.world_queries import ActorRef, Claim
from videosearch.corpus.world_spec import Actor, Event, VideoSpec
from videosearch.policy.event_log import LogEntry
from videosearch.train.reasoning import log_reasoning, rewrite_query, verification_reasoning


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


LOG = [LogEntry(1.0, 4.5, "small", "red", "circle", "moves", "left"),
       LogEntry(5.0, 8.5, "small", "blue", "square", "grows", "")]


def test_with_a_log_the_reasoning_quotes_its_entries_and_a_match_takes_their_span() -> None:
    matched, reason, span = verification_reasoning(CLAIM, _video(), ("garden", LOG))
    assert matched and span == (5.0, 8.5), "the log's span, which the policy can copy"
    assert reason == (f"{rewrite_query(CLAIM)} Seen: blue square small grows 5.0-8.5s; "
                      "red circle small moves left 1.0-4.5s. It matches.")


def test_the_verdict_stays_the_world_truth_where_the_log_is_wrong() -> None:
    missed = [LOG[0]]  # the encoder did not see the square grow
    matched, reason, span = verification_reasoning(CLAIM, _video(), ("garden", missed))
    assert matched and span == (5.0, 8.0) and reason.endswith("Seen: blue square not seen. The actor is missing.")
    matched, reason, span = verification_reasoning(CLAIM, _video(swap=True), ("garden", LOG))
    assert not matched and span is None and reason.endswith("It matches."), "a false match in the log is quoted"


def test_each_difference_from_the_log_is_named() -> None:
    def difference(claim: Claim, log: list[LogEntry], scene: str = "garden") -> str:
        return log_reasoning(claim, scene, log)[0].removeprefix(rewrite_query(claim) + " ")

    assert difference(CLAIM, LOG, "desert") == "This video is in the desert."
    large = Claim(**{**CLAIM.__dict__, "actor": ActorRef("square", "blue", "large")})
    assert difference(large, LOG) == "Seen: blue square small grows 5.0-8.5s. The size differs."
    shrinks = Claim(**{**CLAIM.__dict__, "kind": "shrinks"})
    assert difference(shrinks, LOG) == "Seen: blue square small grows 5.0-8.5s. The action differs."
    jumps = Claim(**{**CLAIM.__dict__, "other_kind": "jumps", "other_param": ""})
    assert difference(jumps, LOG).endswith("circle small moves left 1.0-4.5s. The other actor's action is missing.")
    before = Claim(**{**CLAIM.__dict__, "relation": "before"})
    assert difference(before, LOG).endswith("The order differs.")
    assert log_reasoning(before, "garden", LOG)[1] is None and log_reasoning(CLAIM, "garden", LOG)[1] == LOG[1]
