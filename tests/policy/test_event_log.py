from __future__ import annotations

import torch

from videosearch.corpus.world_queries import ActorRef, Claim
from videosearch.corpus.world_spec import COLOURS, DIRECTIONS, EVENT_KINDS, SCENES, SHAPES
from videosearch.policy.event_log import LogEntry, _runs, matching_entry, read_events, render_log

K = len(COLOURS)
RED, GREEN, BLUE = (list(COLOURS).index(c) for c in ("red", "green", "blue"))


class ScriptedEncoder:
    """Stands in for a trained FrameEncoder: its heads say exactly what the test scripted, frame by frame."""

    def __init__(self, t: int) -> None:
        self.t = t
        self.visible = torch.full((t, K), -5.0)
        self.shape = torch.zeros(t, K, len(SHAPES))
        self.radius = torch.full((t, K), 5.0 / 9.0)
        self.event = torch.zeros(t, K, len(EVENT_KINDS) + 1)
        self.direction = torch.zeros(t, K, len(DIRECTIONS) + 1)
        self.scene = torch.zeros(t, len(SCENES))
        self.scene[:, list(SCENES).index("desert")] = 5.0

    def act(self, slot: int, frames: range, kind: str, param: str = "") -> None:
        self.event[list(frames), slot, EVENT_KINDS.index(kind) + 1] = 5.0
        if param in DIRECTIONS:
            self.direction[list(frames), slot, DIRECTIONS.index(param) + 1] = 5.0

    def predict(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        box = torch.zeros(self.t, K, 3)
        box[..., 2] = self.radius
        return {"visible": self.visible, "shape": self.shape, "box": box, "scene": self.scene}

    def track_events(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.event[None], self.direction[None]


def test_runs_keep_long_enough_stretches_of_one_event() -> None:
    assert _runs([0, 3, 3, 3, 0, 2, 0, 5, 5], min_frames=2) == [(1, 3), (7, 8)]
    assert _runs([1, 1, 2, 2], min_frames=1) == [(0, 1), (2, 3)]
    assert _runs([], min_frames=2) == []


def test_the_log_names_each_tracked_event_with_its_actor_and_its_true_times() -> None:
    encoder = ScriptedEncoder(10)
    encoder.visible[:, RED] = 5.0
    encoder.shape[:, RED, SHAPES.index("circle")] = 5.0
    encoder.act(RED, range(1, 4), "moves", "left")
    encoder.act(RED, range(6, 7), "jumps")  # one frame: noise, dropped
    encoder.visible[:6, BLUE] = 5.0  # a large blue square turns green halfway through 4-7 s
    encoder.visible[6:, GREEN] = 5.0
    encoder.shape[:, BLUE, SHAPES.index("square")] = encoder.shape[:, GREEN, SHAPES.index("square")] = 5.0
    encoder.radius[:, BLUE] = encoder.radius[:, GREEN] = 1.0
    encoder.act(BLUE, range(4, 6), "turns")
    encoder.act(GREEN, range(6, 8), "turns")
    times = [0.5 * i + 1.0 for i in range(10)]  # not 1 fps from 0: the log must use the frames' own times
    scene, entries = read_events(encoder, torch.zeros(10, 1), times, min_frames=2)  # type: ignore[arg-type]
    assert scene == "desert"
    assert entries == [LogEntry(1.5, 2.75, "small", "red", "circle", "moves", "left"),  # to half a frame past
                       LogEntry(3.0, 4.75, "large", "blue", "square", "turns", "green")]
    assert render_log(scene, entries) == ("In the desert: red circle small moves left 1.5-2.8s; "
                                          "blue square large turns green 3.0-4.8s."), "actor first, as span tags"
    assert LogEntry(4.0, 4.25, "small", "red", "circle", "jumps", "") in read_events(
        encoder, torch.zeros(10, 1), times)[1], "by default one frame is enough"  # type: ignore[arg-type]


def test_an_actor_never_in_view_has_no_entries() -> None:
    encoder = ScriptedEncoder(6)
    encoder.act(RED, range(0, 6), "moves", "up")  # the event head fires, but no red actor is ever seen
    assert read_events(encoder, torch.zeros(6, 1), list(range(6)))[1] == []  # type: ignore[arg-type]


LOG = [LogEntry(1.0, 4.5, "small", "red", "circle", "moves", "left"),
       LogEntry(5.0, 8.5, "large", "blue", "square", "grows", "")]


def test_a_claim_matches_the_entry_of_its_actor_event_and_order() -> None:
    grows = Claim("garden", ActorRef("square", "blue", ""), "grows", "")
    assert matching_entry(grows, "garden", LOG) == LOG[1]
    assert matching_entry(grows, "desert", LOG) is None, "another scene"
    assert matching_entry(Claim("garden", ActorRef("square", "blue", "small"), "grows", ""), "garden", LOG) is None
    assert matching_entry(Claim("garden", ActorRef("square", "blue", ""), "shrinks", ""), "garden", LOG) is None
    after = Claim("garden", ActorRef("square", "blue", ""), "grows", "", "after", ActorRef("circle", "red", ""),
                  "moves", "left")
    assert matching_entry(after, "garden", LOG) == LOG[1]
    before = Claim(**{**after.__dict__, "relation": "before"})
    assert matching_entry(before, "garden", LOG) is None, "the other actor's event comes first, not after"
