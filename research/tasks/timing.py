"""Wall time of training steps, for benchmarks and for sizing runs on a lent GPU."""

from __future__ import annotations

import time

import lightning as L
import torch

__all__ = ["StepTimer"]


class StepTimer(L.Callback):
    """Wall time from the start of batch ``warmup`` (counted from 0 across epochs) to the end of
    the last batch.

    Batches are counted here, not read from ``global_step``, which counts optimizer steps (two
    a batch for a codec with its auxiliary optimizer). On a GPU the clock waits for the queued
    kernels first, so a batch is timed when its work is done, not when it was launched.
    """

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = self.end = 0.0
        self.batches = 0  # batches finished

    @staticmethod
    def _now() -> float:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.batches == self.warmup:
            self.start = self._now()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches += 1
        self.end = self._now()

    @property
    def seconds_per_step(self) -> float:
        """Mean over the batches after the warm-up."""
        timed = self.batches - self.warmup
        if timed < 1:
            raise ValueError(f"no batch was timed after the {self.warmup} warm-up batches "
                             f"({self.batches} ran)")
        return (self.end - self.start) / timed
