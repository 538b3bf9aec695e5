"""Draws a `VideoSpec` as RGB frames: a striped scene and flat coloured shapes that move, grow and recolour."""

from __future__ import annotations

import numpy as np

from videosearch.corpus.world_spec import COLOURS, FRAME_SIZE, SCENES, Actor, VideoSpec

RADIUS_PX = {"small": 5.0, "large": 9.0}
MOVE_PX = 20.0
JUMP_PX = 8.0
_YY, _XX = np.mgrid[0:FRAME_SIZE, 0:FRAME_SIZE].astype(np.float32)


def scene_background(scene: str) -> np.ndarray:
    """(H, W, 3) uint8: sky/wall colour above a horizon, floor colour below, optional stripes."""
    top, bottom, stripe = SCENES[scene]
    image = np.empty((FRAME_SIZE, FRAME_SIZE, 3), np.float32)
    horizon = FRAME_SIZE * 5 // 8
    image[:horizon] = top
    image[horizon:] = bottom
    if stripe:
        dark = ((_XX + _YY) // stripe % 2 == 0)[horizon:]
        image[horizon:][dark] *= 0.85
    return image.astype(np.uint8)


def _shape_mask(shape: str, x: float, y: float, radius: float) -> np.ndarray:
    dx, dy = _XX - x, _YY - y
    if shape == "circle":
        return dx * dx + dy * dy <= radius * radius
    if shape == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= radius * 0.85
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= radius * 1.2
    # triangle pointing up: apex at the top, base at the bottom
    return (dy >= -radius) & (dy <= radius * 0.8) & (np.abs(dx) <= (dy + radius) * 0.6)


def _progress(t: float, start_s: float, end_s: float) -> float:
    return float(np.clip((t - start_s) / max(end_s - start_s, 1e-6), 0.0, 1.0))


def actor_state(spec: VideoSpec, who: int, t: float) -> tuple[float, float, float, str, bool]:
    """(x, y, radius, colour, visible) of actor `who` at time t, folding its events in order."""
    actor: Actor = spec.actors[who]
    x, y, radius, colour = actor.x, actor.y, RADIUS_PX[actor.size], actor.colour
    own = [e for e in spec.events if e.actor == who]
    visible = not (own and own[0].kind == "enters")
    for event in own:
        if t < event.start_s:
            break
        p = _progress(t, event.start_s, event.end_s)
        if event.kind == "moves":
            step = {"left": (-MOVE_PX, 0), "right": (MOVE_PX, 0), "up": (0, -MOVE_PX), "down": (0, MOVE_PX)}
            dx, dy = step[event.param]
            x, y = float(np.clip(x + dx * p, 4, FRAME_SIZE - 4)), float(np.clip(y + dy * p, 4, FRAME_SIZE - 4))
        elif event.kind == "enters":
            edge = -radius if event.param == "left" else FRAME_SIZE + radius
            x, visible = edge + (x - edge) * p, True
        elif event.kind == "leaves":
            edge = -radius - 2 if event.param == "left" else FRAME_SIZE + radius + 2
            x = x + (edge - x) * p
            visible = p < 1.0
        elif event.kind in ("grows", "shrinks"):
            target = RADIUS_PX["large" if event.kind == "grows" else "small"]
            radius = radius + (target - radius) * p
        elif event.kind == "turns":
            colour = event.param if p >= 0.5 else colour
        elif event.kind == "jumps":
            y = y - JUMP_PX * abs(np.sin(2 * np.pi * p))
    return x, y, radius, colour, visible


def render_video(spec: VideoSpec, fps: float, noise_seed: int = 0) -> np.ndarray:
    """All frames of the video at `fps`: uint8 (T, H, W, 3), with a little sensor noise."""
    background = scene_background(spec.scene).astype(np.float32)
    rng = np.random.default_rng(noise_seed)
    n_frames = int(round(spec.duration_s * fps))
    frames = np.empty((n_frames, FRAME_SIZE, FRAME_SIZE, 3), np.uint8)
    for i in range(n_frames):
        t = i / fps
        image = background.copy()
        for who, actor in enumerate(spec.actors):
            x, y, radius, colour, visible = actor_state(spec, who, t)
            if visible:
                image[_shape_mask(actor.shape, x, y, radius)] = COLOURS[colour]
        image += rng.normal(0.0, 4.0, size=(FRAME_SIZE, FRAME_SIZE, 1)).astype(np.float32)
        frames[i] = np.clip(image, 0, 255).astype(np.uint8)
    return frames
