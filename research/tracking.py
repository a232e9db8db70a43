"""Weights & Biases tracking for the non-Lightning runs (federate, serve, evaluate, demo).

Lightning runs log through ``WandbLogger`` in their YAML; everything else logs through
:func:`log_run`, so every run leaves the same record: its config, its summary numbers, its
figures and its tables. Offline unless ``WANDB_MODE`` says otherwise (no login is ever asked
for); ``WANDB_MODE=disabled`` (the tests) turns it off.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["log_run", "machine_description"]


def machine_description() -> str:
    """The CPU and thread count a result was measured with, recorded beside the numbers."""
    import torch

    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, CPU"


def _scalars(summary: Mapping) -> dict:
    """Flatten nested dicts to ``a/b`` keys, keeping numbers and strings only."""
    out: dict = {}
    for key, value in summary.items():
        if isinstance(value, Mapping):
            out.update({f"{key}/{k}": v for k, v in _scalars(value).items()})
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out[str(key)] = value
    return out


def log_run(job: str, config: Mapping, summary: Mapping, *, out_dir: str | Path,
            figures: Sequence[str | Path] = (), tables: Mapping[str, Sequence[Mapping]] | None = None,
            project: str = "satedge") -> str | None:
    """Record one run in W&B (offline by default); returns the run directory, or ``None`` if off.

    Args:
        job: the run's kind (``evaluate``, ``federate``, ``serve``, ``demo``) - its W&B job type.
        config: what the run was asked to do (JSON-able).
        summary: its headline numbers (nested dicts are flattened to ``a/b`` keys).
        out_dir: where the run's own files go; W&B writes under ``out_dir/wandb``.
        figures: PNG files to attach as images.
        tables: name -> rows (dicts with the same keys), attached as W&B tables.
        project: W&B project name.
    """
    os.environ.setdefault("WANDB_MODE", "offline")
    if os.environ["WANDB_MODE"] == "disabled":
        return None
    import wandb

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, job_type=job, config=dict(config), dir=str(out_dir),
                     reinit="finish_previous",
                     settings=wandb.Settings(mode=os.environ["WANDB_MODE"], silent=True))
    try:
        run.summary.update(_scalars(summary))
        payload: dict = {}
        for fig in figures:
            if Path(fig).suffix == ".png" and Path(fig).exists():
                payload[f"figures/{Path(fig).stem}"] = wandb.Image(str(fig))
        for name, rows in (tables or {}).items():
            rows = list(rows)
            if rows:
                columns = list(rows[0])
                payload[f"tables/{name}"] = wandb.Table(
                    columns=columns, data=[[row.get(c) for c in columns] for row in rows])
        if payload:
            run.log(payload)
        return run.dir
    finally:
        run.finish()
