"""Short verification reasoning for SFT targets, written from the synthetic world's ground truth.

Given what a query claims and the spec of the video the policy was shown, say what was compared
(scene, actor, colour, size, action, order) and where it first differs, or where the moment is.
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
    asked = f"the {_actor(claim.actor)} {_action(claim.kind, claim.param)}"
    if claim.scene != spec.scene:
        return False, f"The query is set in the {claim.scene}, but this video shows the {spec.scene}.", None
    own = _actors_present(spec, claim.actor)
    if not own:
        return False, f"The query asks for the {_actor(claim.actor)} in the {claim.scene}, but no such actor " \
                      "appears in this video.", None
    doing = [i for i in own if (spec.events[i].kind, spec.events[i].param) == (claim.kind, claim.param)]
    if not doing:
        seen = _action(spec.events[own[0]].kind, spec.events[own[0]].param)
        return False, f"The query asks for {asked}, but here the {_actor(claim.actor)} {seen} instead.", None
    hits = claim_holds(claim, spec)
    if not hits:
        other = f"the {_actor(claim.other)} {_action(claim.other_kind, claim.other_param)}" if claim.other else ""
        return False, f"In this video {asked}, but not {claim.relation} {other}: the order of events differs.", None
    event = spec.events[hits[0]]
    context = ""
    if claim.relation and claim.other is not None:
        context = f", {claim.relation} the {_actor(claim.other)} {_action(claim.other_kind, claim.other_param)}"
    reason = f"The video is in the {spec.scene}; {asked}{context}."  # the span follows in its own tags
    return True, reason, (event.start_s, event.end_s)


def rewrite_query(claim: Claim) -> str:
    """The hard-refinement (HQR) target: the claim stated plainly, with every detail it has."""
    text = f"In the {claim.scene}, the {_actor(claim.actor)} {_action(claim.kind, claim.param)}"
    if claim.relation and claim.other is not None:
        text += f" {claim.relation} the {_actor(claim.other)} {_action(claim.other_kind, claim.other_param)}"
    return text + "."
