"""Resumable training checkpoints, shared by the trainers: `<out>/last` (weights + trainer state) and `<out>/final`.

A checkpoint is written beside its folder and swapped in, its state file renamed into place last, so a folder
holding the state file is complete; a run killed at any point resumes from its newest complete checkpoint with its
log cut back to that step and every random state restored.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch

from videosearch.atomic import write_text_atomic
from videosearch.errors import VideosearchError
from videosearch.folders import clean_leftovers, fsync_dir, fsync_tree, recover_swap, swap_in, tmp_sibling
from videosearch.policy.policy import Policy

logger = logging.getLogger(__name__)
LAST = "last"
FINAL = "final"
STATE_FILE = "trainer_state.pt"


class CheckpointError(VideosearchError):
    """A resume checkpoint that is incomplete, damaged or holds more than tensors and plain values."""


def save_checkpoint(policy: Policy, folder: Path, state: dict | None = None) -> None:
    """Replace `folder` by the trained weights (and `state`, to resume), written beside it and swapped in."""
    clean_leftovers(folder)  # ours too: a temporary folder of this process is an earlier failed save
    tmp = tmp_sibling(folder)
    policy.save(tmp)
    if state is not None:
        torch.save(state, tmp / f"{STATE_FILE}.part")
    fsync_tree(tmp)
    if state is not None:
        os.rename(tmp / f"{STATE_FILE}.part", tmp / STATE_FILE)
        fsync_dir(tmp)
    swap_in(tmp, folder)


def recover_checkpoint(out: Path) -> Path | None:
    """`<out>/last`, once a save a kill cut between its renames is finished; None when no checkpoint is complete."""
    last = out / LAST
    recover_swap(last, STATE_FILE)
    if last.exists() and not (last / STATE_FILE).is_file():
        raise CheckpointError(f"{last} is not a complete checkpoint (no {STATE_FILE}): restore it, or delete it "
                              "to train again from step 0")
    clean_leftovers(last)
    return last if last.exists() else None


def load_state(path: Path, optimizer: torch.optim.Optimizer, scheduler: object, generator: torch.Generator) -> int:
    """Restore the optimizer, the schedule and the random states saved with a checkpoint; returns its step."""
    try:
        # weights_only: tensors and plain values only, so a swapped checkpoint cannot run code
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path} cannot be loaded safely: it holds more than tensors and plain values, or it "
                              f"is damaged ({str(exc).splitlines()[0][:200]}); restore it, or delete {path.parent} "
                              "to train again from step 0") from None
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])  # type: ignore[attr-defined]
        step = int(state["step"])
        if "rng" in state:
            set_rng_state(state["rng"], generator)
        else:
            logger.warning("%s holds no random state (saved by an older version): the resumed run will not "
                           "repeat an uninterrupted one exactly", path)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        raise CheckpointError(f"{path} does not hold the trainer state of this run ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]}); restore it, or delete {path.parent} to train "
                              "again from step 0") from None
    return step


def rng_state(generator: torch.Generator) -> dict:
    """Every random state a step draws from (dropout, sampling, negatives' fill), as tensors and plain values."""
    _, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # type: ignore[misc]
    return {"python": random.getstate(), "numpy": {"key": torch.from_numpy(key.astype(np.int64)), "pos": pos,
                                                   "has_gauss": has_gauss, "gauss": gauss},
            "torch": torch.get_rng_state(), "generator": generator.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    random.setstate(state["python"])
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["key"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["gauss"]))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def truncate_log(path: Path, step: int) -> None:
    """Keep the log's records up to `step`, the checkpoint's: the resumed run writes the later ones again."""
    kept = []
    lines = path.read_text(encoding="utf-8", errors="replace").split("\n") if path.exists() else []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break  # the end, or a line a kill cut short
        if not isinstance(record, dict) or not isinstance(record.get("step"), int) or record["step"] > step:
            break
        kept.append(line)
    dropped = sum(1 for line in lines if line.strip()) - len(kept)
    if dropped and step == 0:
        logger.warning("%s holds no complete checkpoint: training starts again from step 0", path.parent)
    elif dropped:
        logger.info("%s: dropping %d records after step %d, which are trained again", path, dropped, step)
    write_text_atomic(path, "".join(line + "\n" for line in kept))
