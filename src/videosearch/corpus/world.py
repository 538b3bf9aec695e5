"""The synthetic world: mp4 videos and VERIFIED-format annotations, deterministic from a seed.

Run: `videosearch world generate --out runs/world --seed 0 [--size small|default]`.
Layout of the output folder:
    world.json                     the config, seed and counts (written last: its presence means complete)
    .world-in-progress             present while a generation runs; only a folder that is missing, empty or
                                   holds it (or world.json) is written into, so no user file is ever deleted
    videos/<split>/<video_id>.mp4  one file per video
    <split>.jsonl                  VERIFIED-format moments (`fig_desc`, `cog_desc`, `time`, `desc_id`, ...)
    <split>_videos.jsonl           the full spec of every video (scene, actors, timed events), for analysis
"""

from __future__ import annotations

import json
import logging
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from videosearch.atomic import write_text_atomic
from videosearch.corpus.annotations import write_verified
from videosearch.corpus.types import Moment
from videosearch.corpus.video import write_video
from videosearch.corpus.world_queries import make_queries
from videosearch.corpus.world_render import render_video
from videosearch.corpus.world_spec import VideoSpec, sample_family
from videosearch.errors import ConfigError
from videosearch.folders import check_replaceable

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
FORMAT_VERSION = 1
PARTIAL_MARKER = ".world-in-progress"  # written first: a folder holding it is a world of ours, not yet complete


@dataclass
class WorldConfig:
    """Sizes of the synthetic world; `families` counts near-duplicate groups per split."""

    families: dict[str, int] = field(default_factory=lambda: {"train": 240, "val": 20, "test": 40})
    family_size: int = 5  # base video + variants that each change one thing
    queries_per_video: dict[str, int] = field(default_factory=lambda: {"train": 12, "val": 1, "test": 2})
    fps: float = 4.0  # frame rate of the written mp4 files; readers sample them at 1 fps
    n_actors: tuple[int, int] = (2, 3)
    n_events: tuple[int, int] = (3, 4)

    def __post_init__(self) -> None:
        for split in SPLITS:
            if self.families.get(split, 0) < 1:
                raise ConfigError(f"families[{split!r}] must be >= 1 (got {self.families.get(split)})")
            if self.queries_per_video.get(split, 0) < 1:
                raise ConfigError(f"queries_per_video[{split!r}] must be >= 1")
        if not 1 <= self.family_size <= 6:
            raise ConfigError(f"family_size must be in 1..6 (got {self.family_size}): there are 5 kinds of variant")
        if self.fps < 1.0:
            raise ConfigError(f"fps must be >= 1 (got {self.fps})")

    @classmethod
    def preset(cls, size: str) -> WorldConfig:
        """`default` is the embedded benchmark; `small` generates in seconds for tests."""
        if size == "default":
            return cls()
        if size == "small":
            return cls(families={"train": 8, "val": 2, "test": 3}, family_size=4)
        raise ConfigError(f"unknown world size {size!r}: use 'small' or 'default'")


def _render_and_write(args: tuple[dict, str, float, int]) -> None:
    spec_dict, path, fps, noise_seed = args
    write_video(path, render_video(VideoSpec.from_dict(spec_dict), fps, noise_seed), fps)


def _split_specs(seed: int, split_index: int, split: str, config: WorldConfig) -> list[VideoSpec]:
    specs = []
    for family in range(config.families[split]):
        rng = np.random.default_rng([seed, split_index, family])
        specs += sample_family(rng, f"{split}_{family:04d}", config.family_size, config.n_actors, config.n_events)
    return specs


def generate_world(out_dir: str | Path, seed: int = 0, config: WorldConfig | None = None, workers: int = 2,
                   splits: tuple[str, ...] = SPLITS) -> Path:
    """Write the world into `out_dir`; a complete world with the same seed and config is reused as it is.

    `splits` writes only some splits (e.g. the test split for a demo): they are the same files, query ids
    included, as in the whole world, since every split is drawn from its own seed.

    Returns:
        The output folder.
    """
    config = config or WorldConfig()
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown or not splits:
        raise ConfigError(f"unknown split(s) {unknown or splits}: choose among {', '.join(SPLITS)}")
    out = Path(out_dir)
    manifest = {"format_version": FORMAT_VERSION, "seed": seed, "config": asdict(config)}
    if set(splits) != set(SPLITS):
        manifest["splits"] = [split for split in SPLITS if split in splits]
    done = out / "world.json"
    if done.exists():
        try:
            previous = json.loads(done.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{done} is unreadable ({exc}): delete {out} and generate the world again") from None
        wanted = {**manifest, "splits": manifest.get("splits")}  # a world of some splits is not the whole world
        if {k: previous.get(k) for k in wanted} == json.loads(json.dumps(wanted)):
            logger.info("world in %s is complete with the same seed and config: reusing it", out)
            return out
        raise ConfigError(f"{out} holds a world with another seed or config: choose another --out or delete it")
    check_replaceable(out, PARTIAL_MARKER, "synthetic world")  # it will delete and rewrite videos/<split>
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / PARTIAL_MARKER, json.dumps(manifest))
    counts: dict[str, dict[str, int]] = {}
    qid = 0
    for split_index, split in enumerate(SPLITS):
        specs = _split_specs(seed, split_index, split, config)
        queries = make_queries(np.random.default_rng([seed, split_index, 10**6]), specs,
                               config.queries_per_video[split])
        by_id = {s.video_id: s for s in specs}
        moments = []
        for query in queries:
            event = by_id[query.video_id].events[query.event_index]
            moments.append(Moment(str(qid), query.text, query.video_id, event.start_s, event.end_s,
                                  by_id[query.video_id].duration_s))
            qid += 1
        if split not in splits:
            continue
        video_dir = out / "videos" / split
        if video_dir.exists():
            shutil.rmtree(video_dir)  # a partial earlier run: its files may be of another config
        video_dir.mkdir(parents=True)
        jobs = [(s.to_dict(), str(video_dir / f"{s.video_id}.mp4"), config.fps, seed * 100003 + i)
                for i, s in enumerate(specs)]
        _run_jobs(jobs, workers, f"rendering {split}")
        extra = {m.qid: {"cog_desc": q.coarse, "claim": q.claim, "event_index": q.event_index}
                 for m, q in zip(moments, queries)}
        write_verified(out / f"{split}.jsonl", moments, extra=extra)
        write_text_atomic(out / f"{split}_videos.jsonl", "".join(json.dumps(s.to_dict()) + "\n" for s in specs))
        counts[split] = {"videos": len(specs), "queries": len(moments), "families": config.families[split]}
        logger.info("%s: %d videos, %d queries", split, len(specs), len(moments))
    write_text_atomic(done, json.dumps({**manifest, "counts": counts}, indent=2))
    (out / PARTIAL_MARKER).unlink()
    return out


def _run_jobs(jobs: list, workers: int, label: str) -> None:
    from videosearch.progress import track

    if workers <= 1:
        for job in track(jobs, description=label):
            _render_and_write(job)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for _ in track(pool.map(_render_and_write, jobs, chunksize=8), total=len(jobs), description=label):
            pass


def load_video_specs(world_dir: str | Path, split: str) -> dict[str, dict]:
    """The spec of every video of a split, by video id (scene, actors, timed events)."""
    path = Path(world_dir) / f"{split}_videos.jsonl"
    with open(path) as fh:
        return {row["video_id"]: row for row in map(json.loads, fh)}
