"""Where the project finds things on disk: the repo, the shared offline data, committed checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

#: The fine-tuned split ViT that downstream work starts from (codecs, spiking heads, serving, the
#: ledger and the demo): full fine-tuning of the 100-epoch MAE foundation, 96.78% EuroSAT test
#: accuracy. Relative to the repository root (see :func:`resolve_path`); YAMLs name it explicitly.
DEFAULT_CLASSIFIER = "checkpoints/satvit_small_full_mae_long.ckpt"
#: The self-supervised foundation (encoder only) that federated and head/LoRA work start from.
DEFAULT_FOUNDATION = "checkpoints/satvit_small_mae_long.pt"


def shared_data_dir() -> Path:
    """The offline data folder (``../shared/data`` beside the repo, or ``$SATEDGE_SHARED_DATA``)."""
    override = os.environ.get("SATEDGE_SHARED_DATA")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "data"


def eurosat_dir() -> Path:
    """The full EuroSAT RGB ImageFolder copy (27,000 JPEGs), when present."""
    return shared_data_dir() / "eurosat_rgb"


def tle_dir() -> Path:
    """The mid-July 2024 CelesTrak TLE snapshot, when present."""
    return shared_data_dir() / "tle"


def checkpoints_dir() -> Path:
    """Committed model checkpoints (weights only) that later work and the demo start from."""
    return REPO_ROOT / "checkpoints"


def resolve_path(path: str | None) -> str | None:
    """A config's relative path: as given if it exists from here, else from the repository root.

    Lets every YAML name ``checkpoints/...`` or ``experiments/...`` and still run from any
    working directory.
    """
    if path is None or Path(path).is_absolute() or Path(path).exists():
        return path
    candidate = REPO_ROOT / path
    return str(candidate) if candidate.exists() else path
