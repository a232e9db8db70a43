"""What a Lightning run needs to resume to the bit: whole checkpoint files and the random state.

Two gaps in a plain ``Trainer``:

* Lightning writes a local checkpoint through fsspec, whose "transaction" stages the bytes in the
  system temporary folder and then *moves* them over the target: across file systems that is a
  copy, so a kill midway leaves a half ``last.ckpt`` that the next ``--ckpt_path`` trusts.
  :class:`AtomicCheckpointIO` writes beside the target, fsyncs and renames
  (:func:`research.atomic.atomic_save`).
* A checkpoint holds the weights, optimiser and loop counters but not the global random
  generators, so a resumed run shuffles, masks (MAE) and drops out differently from the run that
  never stopped. :class:`RandomStateCheckpoint` stores torch, numpy and Python generator states
  with every checkpoint and puts them back on resume.

``satedge fit`` adds both to every trainer (:mod:`research.cli`).
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback

from research.atomic import atomic_save

__all__ = ["AtomicCheckpointIO", "RandomStateCheckpoint", "collect_random_state",
           "restore_random_state"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Local torch checkpoints written whole or not at all (temporary file, fsync, rename);
    remote URLs go through Lightning's own writer."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote: fsspec's own writer
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        from pathlib import Path

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(checkpoint, target)


def collect_random_state() -> dict[str, Any]:
    """The global torch, CUDA, numpy and Python generator states, as tensors and plain numbers
    (a checkpoint loads with ``weights_only=True``, which refuses numpy arrays)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, python_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": torch.tensor(python_state, dtype=torch.int64),
                   "gauss": gauss},
    }


def restore_random_state(state: dict[str, Any]) -> None:
    """Put back what :func:`collect_random_state` returned."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss"]))


class RandomStateCheckpoint(Callback):
    """Saves the global random state with each checkpoint and restores it on resume.

    The state is taken when the checkpoint is written (after the epoch's validation) and set back
    before the resumed fit loop starts; Lightning's sanity check runs inside ``isolate_rng``, so
    the next epoch's shuffle, dropout and masks are drawn from the same state as in a run that
    never stopped.
    """

    def state_dict(self) -> dict[str, Any]:
        return collect_random_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict:
            restore_random_state(state_dict)
