"""The options every model-training figure driver shares (research/eval/rate_accuracy.py,
research/eval/snn_energy.py): a subclass adds its own fields and fills unset ones in
``with_defaults``. The fields are the scripts' options of the same names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class FigureRunConfig:
    """``quick``: the embedded subset and a tiny model; ``out``: the folder written; ``backbone``,
    ``pretrained`` (weights file) and ``root`` (EuroSAT ImageFolder): ``None`` takes the driver's
    quick or full default."""

    quick: bool = False
    out: Path = Path("outputs/figures")
    backbone: str | None = None
    pretrained: str | None = None
    root: str | None = None
