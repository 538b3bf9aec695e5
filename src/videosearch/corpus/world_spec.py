"""What a synthetic video contains: scenes, actors, timed events, and the families of near-duplicates.

A *family* is one base video plus variants that each change a single thing (an actor's colour or
size, the direction of a movement, the order of two events, the scene). Their whole-video content
is nearly the same, so a retriever that pools a video into one vector confuses them; the queries
name the detail that tells them apart. Everything is drawn from a numpy Generator, so a seed fixes it.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 70),
    "blue": (50, 90, 235),
    "yellow": (240, 220, 40),
    "purple": (150, 60, 205),
    "orange": (250, 140, 30),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
}
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = ("small", "large")
# name -> (top colour, bottom colour, stripe period in px); the horizon sits at a scene-specific row
SCENES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], int]] = {
    "kitchen": ((205, 190, 160), (150, 110, 80), 8),
    "garden": ((140, 200, 240), (70, 140, 60), 6),
    "beach": ((120, 190, 235), (225, 205, 150), 0),
    "office": ((170, 170, 175), (100, 100, 110), 16),
    "night street": ((25, 30, 70), (60, 60, 65), 10),
    "bedroom": ((230, 170, 190), (130, 90, 120), 0),
    "snowy field": ((200, 215, 235), (235, 240, 245), 12),
    "desert": ((240, 200, 120), (200, 140, 70), 0),
}
EVENT_KINDS = ("moves", "enters", "leaves", "grows", "shrinks", "turns", "jumps")
DIRECTIONS = ("left", "right", "up", "down")
LANES_Y = (16.0, 32.0, 48.0)
FRAME_SIZE = 64


@dataclass
class Actor:
    """A coloured shape; `colour` and `size` are its state when the video starts."""

    shape: str
    colour: str
    size: str
    x: float
    y: float


@dataclass
class Event:
    """One thing an actor does during [start_s, end_s]; `param` is a direction or a new colour."""

    actor: int
    kind: str
    param: str = ""
    start_s: float = 0.0
    end_s: float = 0.0


@dataclass
class VideoSpec:
    """Everything needed to render one video and to describe what happens in it."""

    video_id: str
    scene: str
    actors: list[Actor]
    events: list[Event]
    duration_s: float
    family: str = ""
    variant: str = "base"
    slots: list[tuple[float, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict) -> VideoSpec:
        """Inverse of `to_dict` (e.g. a line of `<split>_videos.jsonl`)."""
        return cls(**{**row, "actors": [Actor(**a) for a in row["actors"]],
                      "events": [Event(**e) for e in row["events"]],
                      "slots": [tuple(slot) for slot in row.get("slots", [])]})


def actor_state_at_event(spec: VideoSpec, event_index: int) -> tuple[str, str]:
    """(colour, size) of the event's actor when that event starts: earlier events may have changed it."""
    event = spec.events[event_index]
    actor = spec.actors[event.actor]
    colour, size = actor.colour, actor.size
    for earlier in spec.events[:event_index]:
        if earlier.actor != event.actor:
            continue
        if earlier.kind == "turns":
            colour = earlier.param
        elif earlier.kind == "grows":
            size = "large"
        elif earlier.kind == "shrinks":
            size = "small"
    return colour, size


def _allowed_kinds(rank: int, own_total: int, size: str) -> list[str]:
    """What the actor's `rank`-th of `own_total` events may be, given its size at that moment."""
    kinds = ["moves", "turns", "jumps", "grows" if size == "small" else "shrinks"]
    if rank == 0:
        kinds.append("enters")
    if rank == own_total - 1:
        kinds.append("leaves")
    return kinds


def _sample_param(rng: np.random.Generator, kind: str, actor_colours: list[str], own_colour: str) -> str:
    if kind == "moves":
        return str(rng.choice(DIRECTIONS))
    if kind in ("enters", "leaves"):
        return str(rng.choice(("left", "right")))
    if kind == "turns":
        options = [c for c in COLOURS if c != own_colour and c not in actor_colours]
        return str(rng.choice(options))
    return ""


def sample_base(
    rng: np.random.Generator, video_id: str, n_actors: tuple[int, int], n_events: tuple[int, int]
) -> VideoSpec:
    """Draw a base video: a scene, 2-3 actors in separate lanes, 3-4 sequential events."""
    scene = str(rng.choice(list(SCENES)))
    count = int(rng.integers(n_actors[0], n_actors[1] + 1))
    colours = [str(c) for c in rng.choice(list(COLOURS), size=count, replace=False)]
    lanes = rng.permutation(len(LANES_Y))[:count]
    actors = [
        Actor(str(rng.choice(SHAPES)), colours[i], str(rng.choice(SIZES)), float(rng.uniform(18, 46)),
              LANES_Y[lanes[i]])
        for i in range(count)
    ]
    total = int(rng.integers(n_events[0], n_events[1] + 1))
    owners = list(rng.permutation(np.arange(total) % count))  # every actor gets at least one event when possible
    events: list[Event] = []
    for position, who in enumerate(owners):
        own = [e for e in events if e.actor == who]
        size = actors[who].size
        for e in own:
            size = {"grows": "large", "shrinks": "small"}.get(e.kind, size)
        kinds = _allowed_kinds(len(own), owners.count(who), size)
        kind = str(rng.choice(kinds))
        colour = actors[who].colour
        for e in own:
            colour = e.param if e.kind == "turns" else colour
        current = [a.colour for a in actors]
        events.append(Event(int(who), kind, _sample_param(rng, kind, current, colour)))
    spec = VideoSpec(video_id, scene, actors, events, 0.0)
    spec.slots = _sample_slots(rng, total)
    _apply_slots(spec)
    return spec


def _sample_slots(rng: np.random.Generator, n: int) -> list[tuple[float, float]]:
    """Sequential time slots (seconds, half-second grid) with gaps, so event order is crisp."""
    t = float(np.round(rng.uniform(0.5, 2.0) * 2) / 2)
    slots = []
    for _ in range(n):
        length = float(np.round(rng.uniform(3.0, 6.0) * 2) / 2)
        slots.append((t, t + length))
        t += length + float(np.round(rng.uniform(0.5, 2.5) * 2) / 2)
    return slots


def _apply_slots(spec: VideoSpec) -> None:
    for event, (start_s, end_s) in zip(spec.events, spec.slots):
        event.start_s, event.end_s = start_s, end_s
    spec.duration_s = spec.slots[-1][1] + 2.0


def _is_consistent(spec: VideoSpec) -> bool:
    """Enters first, leaves last, grows only when small, distinct colours: what rendering assumes."""
    for who, actor in enumerate(spec.actors):
        own = [i for i, e in enumerate(spec.events) if e.actor == who]
        size = actor.size
        for rank, index in enumerate(own):
            event = spec.events[index]
            if event.kind == "enters" and rank != 0 or event.kind == "leaves" and rank != len(own) - 1:
                return False
            if event.kind == "grows" and size != "small" or event.kind == "shrinks" and size != "large":
                return False
            size = {"grows": "large", "shrinks": "small"}.get(event.kind, size)
    colours = [a.colour for a in spec.actors]
    return len(set(colours)) == len(colours)


def make_variant(rng: np.random.Generator, base: VideoSpec, kind: str, video_id: str) -> VideoSpec | None:
    """Change one thing of `base`; None when this kind of change does not apply to it."""
    spec = copy.deepcopy(base)
    spec.video_id, spec.variant = video_id, kind
    if kind == "recolour":
        who = int(rng.integers(len(spec.actors)))
        used = {a.colour for a in spec.actors} | {e.param for e in spec.events if e.kind == "turns"}
        options = [c for c in COLOURS if c not in used]
        spec.actors[who].colour = str(rng.choice(options))
    elif kind == "resize":
        who = int(rng.integers(len(spec.actors)))
        if any(e.actor == who and e.kind in ("grows", "shrinks") for e in spec.events):
            return None
        spec.actors[who].size = "small" if spec.actors[who].size == "large" else "large"
    elif kind == "flip":
        flippable = [e for e in spec.events if e.kind in ("moves", "enters", "leaves", "grows", "shrinks")]
        if not flippable:
            return None
        event = flippable[int(rng.integers(len(flippable)))]
        if event.kind in ("grows", "shrinks"):
            event.kind = "shrinks" if event.kind == "grows" else "grows"
            spec.actors[event.actor].size = "large" if event.kind == "shrinks" else "small"
        else:
            event.param = {"left": "right", "right": "left", "up": "down", "down": "up"}[event.param]
    elif kind == "swap":
        pairs = [i for i in range(len(spec.events) - 1) if spec.events[i].actor != spec.events[i + 1].actor]
        if not pairs:
            return None
        i = pairs[int(rng.integers(len(pairs)))]
        spec.events[i], spec.events[i + 1] = spec.events[i + 1], spec.events[i]
        spec.slots = _sample_slots(rng, len(spec.events))
        _apply_slots(spec)
    elif kind == "rescene":
        spec.scene = str(rng.choice([s for s in SCENES if s != spec.scene]))
    else:
        raise ValueError(f"unknown variant kind {kind!r}")
    return spec if _is_consistent(spec) else None


VARIANT_KINDS = ("recolour", "swap", "flip", "resize", "rescene")


def sample_family(
    rng: np.random.Generator,
    family_id: str,
    family_size: int,
    n_actors: tuple[int, int] = (2, 3),
    n_events: tuple[int, int] = (3, 4),
) -> list[VideoSpec]:
    """A base video and `family_size - 1` variants, each differing from the base in one thing."""
    for _ in range(100):
        base = sample_base(rng, f"{family_id}_0", n_actors, n_events)
        if _is_consistent(base):
            break
    base.family = family_id
    members = [base]
    kinds = list(rng.permutation(VARIANT_KINDS))
    attempts = 0
    while len(members) < family_size and attempts < 50:
        kind = str(kinds[attempts % len(kinds)])
        attempts += 1
        variant = make_variant(rng, base, kind, f"{family_id}_{len(members)}")
        if variant is not None and all(_signature(variant) != _signature(m) for m in members):
            members.append(variant)
    return members


def _signature(spec: VideoSpec) -> tuple:
    return (spec.scene, tuple((a.shape, a.colour, a.size) for a in spec.actors),
            tuple((e.actor, e.kind, e.param) for e in spec.events))
