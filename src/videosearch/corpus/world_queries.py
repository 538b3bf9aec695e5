"""Fine-grained, paraphrased queries about synthetic videos, kept only when they fit exactly one video.

A query is built from a `Claim` (scene, actor, what it does, optionally what another actor did just
before or after). A claim is checked against every video of the split with the loose reading a
person would use ("after X" = X happened any time earlier), and only claims true of one video become
queries, so the ground truth is never ambiguous.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from videosearch.corpus.world_spec import VideoSpec, actor_state_at_event

SCENE_WORDS = {
    "kitchen": ("kitchen", "kitchen"),
    "garden": ("garden", "sunny garden"),
    "beach": ("beach", "sandy beach"),
    "office": ("office", "grey office"),
    "night street": ("street at night", "dark street"),
    "bedroom": ("bedroom", "cosy bedroom"),
    "snowy field": ("snowy field", "field of snow"),
    "desert": ("desert", "dry desert"),
}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
SHAPE_WORDS = {"circle": ("circle", "ball"), "square": ("square", "box"), "triangle": ("triangle",),
               "diamond": ("diamond", "rhombus")}
EVENT_WORDS = {
    ("moves", "left"): ("moves to the left", "slides left", "travels toward the left side"),
    ("moves", "right"): ("moves to the right", "slides right", "travels toward the right side"),
    ("moves", "up"): ("moves up", "rises toward the top", "climbs upward"),
    ("moves", "down"): ("moves down", "drops toward the bottom", "sinks downward"),
    ("enters", "left"): ("enters from the left", "comes in from the left side"),
    ("enters", "right"): ("enters from the right", "comes in from the right side"),
    ("leaves", "left"): ("leaves to the left", "exits on the left side"),
    ("leaves", "right"): ("leaves to the right", "exits on the right side"),
    ("grows", ""): ("grows bigger", "gets larger", "expands"),
    ("shrinks", ""): ("shrinks", "gets smaller", "becomes smaller"),
    ("jumps", ""): ("jumps up and down", "bounces", "hops twice"),
}
TURN_WORDS = ("turns {c}", "changes colour to {c}", "becomes {c}")


@dataclass(frozen=True)
class ActorRef:
    """How a query names an actor; `size` is empty when the query leaves it out."""

    shape: str
    colour: str
    size: str


@dataclass(frozen=True)
class Claim:
    """What a query asserts about a video."""

    scene: str
    actor: ActorRef
    kind: str
    param: str
    relation: str = ""  # "", "after" or "before"
    other: ActorRef | None = None
    other_kind: str = ""
    other_param: str = ""

    @classmethod
    def from_dict(cls, row: dict) -> Claim:
        """Inverse of `dataclasses.asdict` (the `claim` field of a world annotation line)."""
        other = ActorRef(**row["other"]) if row.get("other") else None
        return cls(**{**row, "actor": ActorRef(**row["actor"]), "other": other})


def _ref(spec: VideoSpec, event_index: int, with_size: bool) -> ActorRef:
    colour, size = actor_state_at_event(spec, event_index)
    return ActorRef(spec.actors[spec.events[event_index].actor].shape, colour, size if with_size else "")


def _ref_matches(ref: ActorRef, spec: VideoSpec, event_index: int) -> bool:
    colour, size = actor_state_at_event(spec, event_index)
    shape = spec.actors[spec.events[event_index].actor].shape
    return ref.shape == shape and ref.colour == colour and (not ref.size or ref.size == size)


def claim_holds(claim: Claim, spec: VideoSpec) -> list[int]:
    """Indices of the events of `spec` the claim describes (empty when it is false of the video)."""
    if claim.scene != spec.scene:
        return []
    hits = []
    for i, event in enumerate(spec.events):
        if (event.kind, event.param) != (claim.kind, claim.param) or not _ref_matches(claim.actor, spec, i):
            continue
        if claim.relation:
            others = range(i) if claim.relation == "after" else range(i + 1, len(spec.events))
            if not any(
                (spec.events[j].kind, spec.events[j].param) == (claim.other_kind, claim.other_param)
                and claim.other is not None and _ref_matches(claim.other, spec, j)
                for j in others
            ):
                continue
        hits.append(i)
    return hits


def sample_claim(rng: np.random.Generator, spec: VideoSpec, event_index: int) -> Claim:
    """A claim about one event, with a random amount of detail and a random neighbouring event."""
    event = spec.events[event_index]
    relation, other, other_kind, other_param = "", None, "", ""
    neighbours = [j for j in (event_index - 1, event_index + 1) if 0 <= j < len(spec.events)]
    if neighbours and rng.random() < 0.85:
        j = int(rng.choice(neighbours))
        relation = "after" if j < event_index else "before"
        other = _ref(spec, j, with_size=bool(rng.random() < 0.5))
        other_kind, other_param = spec.events[j].kind, spec.events[j].param
    return Claim(spec.scene, _ref(spec, event_index, with_size=bool(rng.random() < 0.7)), event.kind, event.param,
                 relation, other, other_kind, other_param)


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _actor_words(rng: np.random.Generator, ref: ActorRef) -> str:
    size = _pick(rng, SIZE_WORDS[ref.size]) + " " if ref.size else ""
    return f"{size}{ref.colour} {_pick(rng, SHAPE_WORDS[ref.shape])}"


def _event_words(rng: np.random.Generator, kind: str, param: str) -> str:
    if kind == "turns":
        return _pick(rng, TURN_WORDS).format(c=param)
    return _pick(rng, EVENT_WORDS[(kind, param)])


def render_claim(rng: np.random.Generator, claim: Claim) -> str:
    """One of several paraphrases of the claim, as a sentence of about 10-20 words."""
    scene = _pick(rng, SCENE_WORDS[claim.scene])
    actor = _actor_words(rng, claim.actor)
    action = _event_words(rng, claim.kind, claim.param)
    clause = ""
    if claim.relation and claim.other is not None:
        other = f"the {_actor_words(rng, claim.other)} {_event_words(rng, claim.other_kind, claim.other_param)}"
        clause = f"{_pick(rng, ('after', 'right after', 'once')) if claim.relation == 'after' else 'before'} {other}"
    templates = [f"In the {scene}, the {actor} {action}" + (f" {clause}" if clause else "") + ".",
                 f"The {actor} {action}" + (f" {clause}" if clause else "") + f" in the {scene}."]
    if clause:
        templates.append(f"{clause[0].upper()}{clause[1:]}, the {actor} {action} in the {scene}.")
    else:
        templates.append(f"Somewhere in a {scene}, a {actor} {action} while the others stay put.")
    return _pick(rng, tuple(templates))


def coarse_description(spec: VideoSpec, event_index: int) -> str:
    """The short caption without the fine details (VERIFIED's `cog_desc`)."""
    event = spec.events[event_index]
    shape = spec.actors[event.actor].shape
    action = _event_words(np.random.default_rng(0), event.kind, event.param)
    return f"a {shape} {action}."


@dataclass
class WorldQuery:
    """A query that fits exactly one video of its split, with its ground-truth event."""

    video_id: str
    event_index: int
    text: str
    coarse: str
    claim: dict


def make_queries(
    rng: np.random.Generator, specs: list[VideoSpec], per_video: int, tries: int = 12
) -> list[WorldQuery]:
    """Up to `per_video` unambiguous queries per video, spread over its events (least-asked event first)."""
    by_scene: dict[str, list[VideoSpec]] = {}
    for spec in specs:
        by_scene.setdefault(spec.scene, []).append(spec)
    queries = []
    for spec in specs:
        asked = np.zeros(len(spec.events), int)
        texts: set[str] = set()
        for _ in range(tries * per_video):
            if len(texts) >= per_video:
                break
            least = np.flatnonzero(asked == asked.min())
            event_index = int(rng.choice(least))
            claim = sample_claim(rng, spec, event_index)
            matching = [s for s in by_scene[spec.scene] if claim_holds(claim, s)]
            text = render_claim(rng, claim)
            if len(matching) == 1 and claim_holds(claim, spec) == [event_index] and text not in texts:
                asked[event_index] += 1
                texts.add(text)
                queries.append(WorldQuery(spec.video_id, event_index, text, coarse_description(spec, event_index),
                                          asdict(claim)))
    return queries
