"""What the frame encoder's heads say happened in a clip, as the line of text the mini policy reads.

A 135M LM that must bind "the small orange circle" to one of eight colour slots inside a frame vector learns only
the verdict's prior in an SFT run that fits this machine (DESIGN.md section 8). So the encoder also writes what
it saw, the way detectors hand object tags to vision-language models: the scene, then one entry per event it
tracked, colour and shape first so that a reasoning which names the actor can copy the rest: "orange circle small
leaves left 3.0-7.5s". The policy still gets the frame features; the log makes the verdict and the span a matter
of reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from videosearch.corpus.types import VideoFrames
from videosearch.corpus.world_queries import ActorRef, Claim
from videosearch.corpus.world_render import RADIUS_PX
from videosearch.corpus.world_spec import COLOURS, DIRECTIONS, EVENT_KINDS, SCENES, SHAPES
from videosearch.embed.mini import frames_to_tensor
from videosearch.policy.frame_encoder import FrameEncoder

_LARGE_PX = (RADIUS_PX["small"] + RADIUS_PX["large"]) / 2  # radius above which an actor reads as large
_DIRECTED = ("moves", "enters", "leaves")


@dataclass
class LogEntry:
    """One event the encoder tracked: its span in seconds (from its first frame's true time to half a frame past its
    last), the actor as the queries name it, the event."""

    start_s: float
    end_s: float
    size: str
    colour: str
    shape: str
    kind: str
    param: str  # a direction, the new colour of "turns", or ""

    def __str__(self) -> str:
        words = [self.colour, self.shape, self.size, self.kind, self.param]  # colour and shape: what queries name
        return " ".join(w for w in words if w) + f" {self.start_s:.1f}-{self.end_s:.1f}s"  # the span tags' format

    def names(self, ref: ActorRef | None) -> bool:
        """Whether this is the actor `ref` names (its size only when `ref` gives one)."""
        return ref is not None and (ref.shape, ref.colour) == (self.shape, self.colour) and ref.size in ("", self.size)


@torch.no_grad()
def read_events(encoder: FrameEncoder, features: torch.Tensor, times_s: list[float],
                min_frames: int = 1) -> tuple[str, list[LogEntry]]:
    """(scene, events in time order) of one clip's features (T, F); a run of `min_frames` or more frames with the
    same tracked event makes an entry, and the two colours' halves of a "turns" become one."""
    heads = encoder.predict(features)
    event_logits, direction_logits = (x[0] for x in encoder.track_events(features[None]))
    events, directions = event_logits.argmax(-1), direction_logits.argmax(-1)  # (T, K)
    visible = heads["visible"] > 0
    large = heads["box"][..., 2] * RADIUS_PX["large"] > _LARGE_PX
    scene = list(SCENES)[int(heads["scene"].mean(0).argmax())]
    half_frame = (float(np.median(np.diff(times_s))) if len(times_s) > 1 else 1.0) / 2
    entries = []
    for slot, colour in enumerate(COLOURS):
        if not visible[:, slot].any():
            continue
        shape = SHAPES[int(heads["shape"][visible[:, slot], slot].sum(0).argmax())]
        for start, end in _runs(events[:, slot].tolist(), min_frames):
            kind = EVENT_KINDS[int(events[start, slot]) - 1]
            direction = int(directions[start: end + 1, slot].mode().values)
            param = DIRECTIONS[direction - 1] if kind in _DIRECTED and direction > 0 else ""
            size = "large" if bool(large[start, slot]) else "small"
            entries.append(LogEntry(float(times_s[start]), float(times_s[end]) + half_frame, size, colour, shape, kind,
                                    param))
    return scene, _join_turns(sorted(entries, key=lambda e: (e.start_s, e.colour)))


def read_clip(encoder: FrameEncoder, video: VideoFrames) -> tuple[str, list[LogEntry]]:
    """`read_events` of one decoded clip (its frames at the encoder's size)."""
    frames = frames_to_tensor([video], encoder.config.frame_size)[0]
    with torch.no_grad():
        return read_events(encoder, encoder(frames)[0], list(video.timestamps_s))


def matching_entry(claim: Claim, scene: str, log: list[LogEntry]) -> LogEntry | None:
    """The first entry that makes the claim true of the log (scene, actor, event, and an entry of the other actor
    on the claimed side in time), or None."""
    if claim.scene != scene:
        return None
    for entry in log:
        if (entry.kind, entry.param) != (claim.kind, claim.param) or not entry.names(claim.actor):
            continue
        side = [o for o in log if (o.start_s < entry.start_s) == (claim.relation == "after")
                and o.start_s != entry.start_s]
        if not claim.relation or any((o.kind, o.param) == (claim.other_kind, claim.other_param)
                                     and o.names(claim.other) for o in side):
            return entry
    return None


def _runs(labels: list[int], min_frames: int) -> list[tuple[int, int]]:
    """(first, last) frame of each run of one non-zero label at least `min_frames` long."""
    runs, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            if labels[start] and i - start >= min_frames:
                runs.append((start, i - 1))
            start = i
    return runs


def _join_turns(entries: list[LogEntry]) -> list[LogEntry]:
    """An actor that turns is tracked in its old colour's slot, then in its new one's: one entry, "turns NEW"."""
    joined: list[LogEntry] = []
    for entry in entries:
        before = next((e for e in reversed(joined) if e.kind == "turns" and not e.param and e.shape == entry.shape
                       and e.colour != entry.colour and entry.start_s - e.end_s <= 2.0), None)
        if entry.kind == "turns" and before is not None:
            before.param, before.end_s = entry.colour, entry.end_s
            continue
        joined.append(entry)
    return joined


def render_log(scene: str, entries: list[LogEntry]) -> str:
    """"In the desert: red circle small moves left 1.0-4.5s; ...." (the line the policy reads)."""
    return f"In the {scene}: " + "; ".join(str(e) for e in entries) + "."
