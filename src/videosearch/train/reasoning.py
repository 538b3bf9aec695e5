"""Short verification reasoning for SFT targets, written from the synthetic world's ground truth.

The reasoning first restates the query in the words of the frame encoder's event log (`rewrite_query`: "In the
garden, the small blue square grows after the red circle moves left."), so that the verdict that follows it
compares two texts in one vocabulary. Given the frame encoder's event log of the video (`policy.event_log`), it
then quotes the log's entries of the actors the query names, actor first, so that a small LM copies them by
induction instead of searching a frame vector, and says where they differ from the query or that they match
(`log_reasoning`): the verdict is then a comparison of two adjacent texts, and the span a copy. Without a log it
says where the video's spec first differs (scene, actor, action, order) or that it shows exactly this.
"""

from __future__ import annotations

from videosearch.corpus.world_queries import ActorRef, Claim, claim_holds
from videosearch.corpus.world_spec import VideoSpec, actor_state_at_event
from videosearch.policy.event_log import LogEntry, matching_entry


def _actor(ref: ActorRef) -> str:
    return " ".join(p for p in (ref.size, ref.colour, ref.shape) if p)


def _action(kind: str, param: str) -> str:
    if kind == "turns":
        return f"turns {param}"
    return f"{kind} {param}".strip()


def _actors_present(spec: VideoSpec, ref: ActorRef) -> list[int]:
    """Events whose actor looks like `ref` when the event starts."""
    hits = []
    for i, event in enumerate(spec.events):
        colour, size = actor_state_at_event(spec, i)
        if spec.actors[event.actor].shape == ref.shape and colour == ref.colour and (not ref.size or ref.size == size):
            hits.append(i)
    return hits


def verification_reasoning(claim: Claim, spec: VideoSpec, seen: tuple[str, list[LogEntry]] | None = None,
                           ) -> tuple[bool, str, tuple[float, float] | None]:
    """(matched, reasoning, span in seconds on a match) for showing `spec` to a query that makes `claim`.

    With `seen`, the video's event log (scene, entries), the reasoning reads the log (`log_reasoning`). The verdict
    is always the world's truth; the span is the log entry's when the log shows the match (the span the policy can
    copy; its IoU with the truth is >= 0.5 for 95 % of them, bench/event_log.py), else the true one.
    """
    if seen is not None:
        hits = claim_holds(claim, spec)
        think, entry = log_reasoning(claim, *seen)
        if not hits:
            return False, think, None
        truth = spec.events[hits[0]]
        return True, think, (entry.start_s, entry.end_s) if entry is not None else (truth.start_s, truth.end_s)
    asked = rewrite_query(claim)
    if claim.scene != spec.scene:
        return False, f"{asked} This video is in the {spec.scene}.", None
    own = _actors_present(spec, claim.actor)
    if not own:
        return False, f"{asked} No {_actor(claim.actor)} appears in this video.", None
    doing = [i for i in own if (spec.events[i].kind, spec.events[i].param) == (claim.kind, claim.param)]
    if not doing:
        seen = _action(spec.events[own[0]].kind, spec.events[own[0]].param)
        return False, f"{asked} Here the {_actor(claim.actor)} {seen} instead.", None
    hits = claim_holds(claim, spec)
    if not hits and claim.other is not None and not _actors_present(spec, claim.other):
        return False, f"{asked} No {_actor(claim.other)} appears in this video.", None
    if not hits:
        return False, f"{asked} Both happen here, but not {claim.relation} each other: the order differs.", None
    event = spec.events[hits[0]]
    return True, f"{asked} The video shows exactly this.", (event.start_s, event.end_s)  # the span has its own tags


def log_reasoning(claim: Claim, scene: str, log: list[LogEntry]) -> tuple[str, LogEntry | None]:
    """(reasoning, the entry that shows the claim or None) from an event log: the query restated, the log's entry
    of its actor ("Seen: red circle small moves left 1.0-4.5s."; the other actor's too when the first one does
    what the query says), then the first difference or "It matches."."""
    asked = rewrite_query(claim)
    if claim.scene != scene:
        return f"{asked} This video is in the {scene}.", None
    entry = matching_entry(claim, scene, log)
    quote = str(entry) if entry is not None else _quote(claim.actor, claim.kind, claim.param, log)
    if claim.other is not None and _doing(claim.actor, claim.kind, claim.param, log):
        quote += "; " + _quote(claim.other, claim.other_kind, claim.other_param, log)
    return f"{asked} Seen: {quote}. {_difference(claim, log) if entry is None else 'It matches.'}", entry


def _coloured(ref: ActorRef, log: list[LogEntry]) -> list[LogEntry]:
    """The entries of the actor of `ref`'s colour and shape, whatever its size."""
    return [e for e in log if e.names(ActorRef(ref.shape, ref.colour, ""))]


def _doing(ref: ActorRef, kind: str, param: str, log: list[LogEntry]) -> list[LogEntry]:
    """The entries of the actor `ref` names (size included) doing (kind, param)."""
    return [e for e in log if e.names(ref) and (e.kind, e.param) == (kind, param)]


def _quote(ref: ActorRef, kind: str, param: str, log: list[LogEntry]) -> str:
    """The log's entry of the actor of `ref`'s colour and shape that does (kind, param), else its first, else
    "<colour> <shape> not seen": it starts with the words the restated query just wrote, whatever the log holds."""
    entries = _doing(ref, kind, param, log) or _coloured(ref, log)
    return str(entries[0]) if entries else f"{ref.colour} {ref.shape} not seen"


def _difference(claim: Claim, log: list[LogEntry]) -> str:
    """Where the log first departs from a claim it does not show: actor, size, action, the other actor, order."""
    if not _coloured(claim.actor, log):
        return "The actor is missing."
    if not any(e.names(claim.actor) for e in log):
        return "The size differs."
    if not _doing(claim.actor, claim.kind, claim.param, log):
        return "The action differs."
    if claim.other is not None and not _doing(claim.other, claim.other_kind, claim.other_param, log):
        return "The other actor's action is missing."
    return "The order differs."


def rewrite_query(claim: Claim) -> str:
    """The hard-refinement (HQR) target: the claim stated plainly, with every detail it has."""
    text = f"In the {claim.scene}, the {_actor(claim.actor)} {_action(claim.kind, claim.param)}"
    if claim.relation and claim.other is not None:
        text += f" {claim.relation} the {_actor(claim.other)} {_action(claim.other_kind, claim.other_param)}"
    return text + "."
