"""Entropy-model plumbing shared by the learned codecs (CompressAI's ``CompressionModel`` duties).

It re-implements, for ``LinkModule``\\ s, what ``compressai.models.CompressionModel`` does for
image models (``update``, ``aux_loss``, loading variable-size CDF buffers), plus two guards that
CompressAI leaves to the user: coding with tables older than the trained entropy models
(forgetting ``update(force=True)`` after training) raises instead of silently coding at a worse
rate than the likelihoods promise; and a checksum of the weights and tables at ``update()`` goes
into every header's tag, so a decoder holding another checkpoint refuses the payload instead of
decoding garbage.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from torch import nn

from encoders.base import LinkModule
from encoders.header import config_tag, state_crc32

__all__ = ["EntropyLink", "scale_table"]

SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64
_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")


def scale_table(
    low: float = SCALES_MIN, high: float = SCALES_MAX, levels: int = SCALES_LEVELS
) -> list[float]:
    """Log-spaced Gaussian scales of the conditional tables (Ballé's defaults, as in CompressAI)."""
    return torch.exp(torch.linspace(math.log(low), math.log(high), levels)).tolist()


def _build_tables_on_cpu(model: EntropyBottleneck | GaussianConditional) -> None:
    """Build ``model``'s integer CDF tables on the CPU and put them where the model lives.

    The tables come from float densities; a GPU rounds them differently from a CPU, and an
    encoder and a decoder whose tables differ by one count desynchronise the range coder. Built
    on the CPU (elementwise ops, so independent of the thread count), a satellite CPU and a ground
    GPU hold identical tables from the same weights, as CompressAI's integer tables intend.
    """
    device = model._quantized_cdf.device
    cpu = copy.deepcopy(model).cpu() if device.type != "cpu" else model
    if isinstance(cpu, GaussianConditional):
        cpu.update_scale_table(cpu.scale_table.tolist() or scale_table(), force=True)
    else:
        cpu.update(force=True)
    if cpu is not model:
        for name in (*_TABLE_BUFFERS, *(("scale_table",) if isinstance(model, GaussianConditional) else ())):
            setattr(model, name, getattr(cpu, name).to(device))


class EntropyLink(LinkModule):
    """A link module with CompressAI entropy models (``EntropyBottleneck``, ``GaussianConditional``).

    Subclasses create their entropy models as sub-modules; this class finds them by type.
    """

    def __init__(self) -> None:
        super().__init__()
        self._snapshot: torch.Tensor | None = None
        self._weights_crc: int | None = None

    def _bottlenecks(self) -> list[EntropyBottleneck]:
        return [m for m in self.modules() if isinstance(m, EntropyBottleneck)]

    def _conditionals(self) -> list[GaussianConditional]:
        return [m for m in self.modules() if isinstance(m, GaussianConditional)]

    def _table_inputs(self) -> torch.Tensor:
        """Everything the coding tables are computed from, flattened (tiny: a few k floats)."""
        parts = [p.detach().flatten() for m in self._bottlenecks() for p in m.parameters()]
        parts += [m.scale_table.detach().flatten() for m in self._conditionals()]
        if not parts:
            return torch.zeros(0)
        return torch.cat([p.to(parts[0].device, torch.float32) for p in parts])

    def tables_stale(self) -> bool:
        """True if the entropy models changed since the last ``update`` (or it never ran)."""
        if self._snapshot is None:
            return True
        current = self._table_inputs()
        return not torch.equal(self._snapshot.to(current.device), current)

    @torch.no_grad()
    def update(self, force: bool = False) -> bool:
        """Rebuild the entropy coder's CDF tables if the entropy models changed (or if forced).

        Also re-takes the weights checksum that goes into every header, so call it after any
        change of weights (training, loading) and before coding: ``update(force=True)`` before
        every evaluation is the simple rule.

        Args:
            force: Rebuild the tables even if the entropy models did not change.

        Returns:
            True if the tables were rebuilt.
        """
        rebuilt = force or self.tables_stale()
        if rebuilt:
            for model in [*self._bottlenecks(), *self._conditionals()]:
                _build_tables_on_cpu(model)
            self._snapshot = self._table_inputs().clone()
        self._weights_crc = state_crc32(self)
        return rebuilt

    def aux_loss(self) -> torch.Tensor:
        """Quantile loss of every ``EntropyBottleneck``: minimise it with its own optimizer."""
        losses = [m.loss() for m in self._bottlenecks()]
        return torch.stack(losses).sum() if losses else torch.zeros((), device=self._device())

    def wire_tag(self) -> int:
        """Configuration tag that also covers the weights and tables at the last ``update()``."""
        return config_tag(self.config(), self._weights_crc)

    def _require_tables(self) -> None:
        if self.tables_stale():
            raise RuntimeError(
                f"{self.link_name or type(self).__name__}: entropy tables are missing or older "
                "than the entropy models; call update(force=True) after training and before "
                "compress()/decompress()"
            )

    def compress(self, tokens: torch.Tensor) -> list[bytes]:
        self._require_tables()
        with torch.no_grad():
            return super().compress(tokens)

    def decompress(self, payloads: Sequence[bytes], shape: Sequence[int]) -> torch.Tensor:
        self._require_tables()
        with torch.no_grad():
            return super().decompress(payloads, shape)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Load weights, resizing the CDF buffers whose size depends on the trained models.

        The tables count as stale afterwards: call ``update(force=True)`` before coding.
        """
        for name, module in self.named_modules():
            if not isinstance(module, (EntropyBottleneck, GaussianConditional)):
                continue
            for buf in _TABLE_BUFFERS + (
                ("scale_table",) if isinstance(module, GaussianConditional) else ()
            ):
                key = f"{name}.{buf}"
                current = getattr(module, buf)
                if key in state_dict and current.shape != state_dict[key].shape:
                    empty = torch.empty(state_dict[key].shape, dtype=current.dtype)
                    setattr(module, buf, empty.to(current.device))
        self._snapshot = self._weights_crc = None
        return nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)
