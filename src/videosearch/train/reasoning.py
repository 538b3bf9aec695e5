"""Short verification reasoning for SFT targets, written from the synthetic world's ground truth.

The reasoning first restates the query in the words of the frame encoder's event log (`rewrite_query`: "In the
garden, the small blue square grows after the red circle moves left."), so that the verdict that follows it
compares two texts in one vocabulary; then it says where the video first differs (scene, actor, action, order)
or that it shows exactly this.
"""

from __future__ import annotations

from videosearch.corpus.world_queries import ActorRef, Claim, claim_holds
from videosearch.corpus.world_spec import VideoSpec, actor_state_at_event


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


def verification_reasoning(claim: Claim, spec: VideoSpec) -> tuple[bool, str, tuple[float, float] | None]:
    """(matched, reasoning, span in seconds on a match) for showing `spec` to a query that makes `claim`."""
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


def rewrite_query(claim: Claim) -> str:
    """The hard-refinement (HQR) target: the claim stated plainly, with every detail it has."""
    text = f"In the {claim.scene}, the {_actor(claim.actor)} {_action(claim.kind, claim.param)}"
    if claim.relation and claim.other is not None:
        text += f" {claim.relation} the {_actor(claim.other)} {_action(claim.other_kind, claim.other_param)}"
    return text + "."
