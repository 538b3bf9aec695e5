"""The trained `mini` weights that ship in the repository, `checkpoints/mini/{retriever,policy}`.

    embedder = load_embedder(shipped_retriever())        # a `MiniEmbedder.save_pretrained` folder
    policy = Policy.load(shipped_policy(), embedder)     # a `Policy.save` folder

The CLI uses them where `--embedder` / `--checkpoint` are not given. They are found next to the source tree of an
editable install (`pip install -e .`, what `make env` does); `make train` recreates them.
"""

from __future__ import annotations

from pathlib import Path

from videosearch.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]  # src/videosearch/shipped.py -> the repository
PRESET = "mini"


def shipped_checkpoint(name: str, flag: str) -> Path:
    """The folder `checkpoints/mini/<name>` of the repository.

    Args:
        name: `retriever` or `policy`.
        flag: the CLI option that passes another folder, named in the error.

    Raises:
        ConfigError: the folder does not exist (an install without the repository, or weights not trained yet).
    """
    folder = REPO_ROOT / "checkpoints" / PRESET / name
    if not folder.is_dir():
        raise ConfigError(f"no shipped checkpoint at {folder}: pass {flag}, or run `make train`")
    return folder


def shipped_retriever() -> Path:
    """The shipped mini retriever (`MiniEmbedder.from_pretrained` folder)."""
    return shipped_checkpoint("retriever", "--embedder")


def shipped_policy() -> Path:
    """The shipped mini policy (`Policy.load` folder)."""
    return shipped_checkpoint("policy", "--checkpoint")
