"""The options a satellite has for one capture, with what each costs and how well it answers.

An :class:`Option` is one way to answer a tile: a cut with its link (codec and rate), the image
sent down in some format, or the whole model on board. It carries per-tile numbers measured on
real images by the evaluation schemes: the **expected accuracy** (on calibration images, never the
scenes being answered), the mean payload bytes, and the FLOPs on board and on the ground. A scene
of ``tiles`` tiles costs ``tiles`` times as much. Policies choose among an :class:`OptionBank`.

Torch-free and independent of :mod:`research.eval`, which builds the bank from its schemes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Option", "OptionBank", "UnreachableFloorError"]


class UnreachableFloorError(ValueError):
    """An accuracy floor above every option's expected accuracy."""


@dataclass(frozen=True)
class Option:
    """One way to answer a tile (numbers per tile).

    Attributes:
        name: The evaluation scheme it comes from (``jpeg90``, ``codec-split5``, ``onboard``).
        accuracy: Expected accuracy in [0, 1], measured on calibration images (``nan``: not
            calibrated; only a ``fixed`` policy can use such an option).
        payload_bytes: Mean bytes that leave the satellite per tile (real payloads).
        flops_onboard: FLOPs on board before sending (satellite part, link encoder).
        flops_ground: FLOPs on the ground.
        return_bytes: Bytes sent back up per tile (features for a head on board; usually 0).
        flops_return_onboard: FLOPs on board after the return (the head).
    """

    name: str
    accuracy: float
    payload_bytes: float
    flops_onboard: float
    flops_ground: float
    return_bytes: float = 0.0
    flops_return_onboard: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isnan(self.accuracy) or 0.0 <= self.accuracy <= 1.0):
            raise ValueError(f"option {self.name!r}: accuracy must be in [0, 1], got "
                             f"{self.accuracy!r}")
        for key in ("payload_bytes", "flops_onboard", "flops_ground", "return_bytes",
                    "flops_return_onboard"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"option {self.name!r}: {key} must be a finite number >= 0, "
                                 f"got {value!r}")


class OptionBank:
    """The options of one run, as arrays a policy indexes by option number.

    Raises:
        ValueError: With no options or duplicate names.
    """

    def __init__(self, options: Sequence[Option]) -> None:
        if not options:
            raise ValueError("a policy needs at least one option")
        names = [o.name for o in options]
        if len(set(names)) != len(names):
            raise ValueError(f"option names must be unique, got {names}")
        self.options = list(options)
        self.names = names
        self.accuracy = np.array([o.accuracy for o in options])
        self.payload_bytes = np.array([o.payload_bytes for o in options])
        self.flops_onboard = np.array([o.flops_onboard + o.flops_return_onboard
                                       for o in options])
        self.flops_before_send = np.array([o.flops_onboard for o in options])
        self.flops_ground = np.array([o.flops_ground for o in options])
        self.return_bytes = np.array([o.return_bytes for o in options])

    def __len__(self) -> int:
        return len(self.options)

    def index(self, name: str) -> int:
        """The number of option ``name`` (ValueError naming the options otherwise)."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"unknown option {name!r}; the options are {self.names}") from None

    def check_floor(self, floor: float, where: str = "policy.floor") -> None:
        """Raise :class:`UnreachableFloorError` if no option's expected accuracy reaches ``floor``,
        naming the best reachable accuracy and its option."""
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"{where} must be an accuracy in [0, 1], got {floor!r}")
        missing = [n for n, a in zip(self.names, self.accuracy, strict=True) if np.isnan(a)]
        if missing:
            raise ValueError(f"{where}: options {missing} have no calibrated accuracy; a policy "
                             "held to a floor needs every option's expected accuracy")
        best = int(np.argmax(self.accuracy))
        if self.accuracy[best] < floor:
            raise UnreachableFloorError(
                f"{where} {floor:.4f} cannot be met: the best reachable expected accuracy is "
                f"{self.accuracy[best]:.4f} ({self.names[best]}); lower the floor or add a more "
                "accurate option")
