"""A spiking classification head for the pooled ViT features ``[B, D]``.

It replaces timm's ``fc_norm`` + ``head`` (a ``LayerNorm`` and a ``Linear``) on the satellite: the
features are encoded over ``T`` steps, pass through ``Linear -> LIF`` layers, and an output
layer is read out as a spike count or as an integrated membrane potential. State is explicit
(:meth:`SpikingHead.init_state` / :meth:`SpikingHead.step`), so one module can simulate many
satellites, each holding its own state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from snn.encoding import encode, get_encoding, integrate_and_fire, make_encoder_neurons
from snn.neurons import initial_mem, make_lif, release_state

__all__ = ["READOUTS", "HeadRecord", "SpikingHead"]

READOUTS = ("count", "rate", "membrane")
"""``count``: output spikes summed over T; ``rate``: that sum / T; ``membrane``: the output
neurons only integrate (never fire), read as their normalised final potential."""


@dataclass
class HeadRecord:
    """Everything a head simulation produced, time first.

    Attributes:
        logits: ``[B, C]`` readout.
        spikes: One ``[T, B, H]`` spike tensor per hidden layer.
        out_spikes: ``[T, B, C]`` output spikes (all zero for the membrane readout).
        out_mem: ``[T, B, C]`` output membrane potentials.
        in_spikes: ``[T, B, D]`` spikes of the input encoder neurons (``if`` encoding), else None.
    """

    logits: torch.Tensor
    spikes: list[torch.Tensor]
    out_spikes: torch.Tensor
    out_mem: torch.Tensor
    in_spikes: torch.Tensor | None = None

    def firing_rates(self) -> list[torch.Tensor]:
        """Mean firing rate of the input encoder (if any) and each hidden layer; differentiable."""
        inputs = [] if self.in_spikes is None else [self.in_spikes]
        return [s.mean() for s in [*inputs, *self.spikes]]


class SpikingHead(nn.Module):
    """LIF classifier on pooled features, with explicit membrane state.

    Args:
        in_features: Feature width ``D``.
        num_classes: Number of classes ``C``.
        hidden: Widths of the hidden LIF layers (empty: ``Linear -> readout`` only).
        num_steps: Timesteps ``T`` per inference.
        beta: Membrane decay of the hidden (and counting output) neurons.
        threshold: Firing threshold.
        surrogate: Surrogate-gradient name.
        encoding: Input encoding name (``direct``, ``rate``, ``rate_sigmoid``, ``if``); ``if``
            adds integrate-and-fire encoder neurons so the first ``Linear`` is spike-driven.
        readout: One of :data:`READOUTS`.
        norm: Start with a ``LayerNorm`` (as timm's ``fc_norm``).
        reset: Reset mechanism of the spiking neurons.
        mem_init: Initial membrane potential as a fraction of the threshold.
        out_beta: Decay of the output integrator for the membrane readout (default ``beta``).
        learn_beta: Train the decays.
        learn_threshold: Train the thresholds.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        hidden: Sequence[int] = (256,),
        num_steps: int = 8,
        beta: float = 0.9,
        threshold: float = 1.0,
        surrogate: str = "fast_sigmoid",
        encoding: str = "direct",
        readout: str = "count",
        norm: bool = True,
        reset: str = "subtract",
        mem_init: float = 0.0,
        out_beta: float | None = None,
        learn_beta: bool = False,
        learn_threshold: bool = False,
    ) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"unknown readout {readout!r}; expected one of {list(READOUTS)}")
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        spiking_input = get_encoding(encoding).neurons  # fails early on an unknown name
        self.num_steps = num_steps
        self.encoding = encoding
        self.readout = readout
        self.mem_init = mem_init
        self.norm = nn.LayerNorm(in_features) if norm else nn.Identity()
        # ``if``: the LayerNorm's per-feature affine sets each encoder neuron's gain and offset
        self.encoder = make_encoder_neurons(surrogate) if spiking_input else None
        widths = [in_features, *hidden, num_classes]
        self.fcs = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        lif_kw = dict(surrogate=surrogate, learn_beta=learn_beta, learn_threshold=learn_threshold)
        self.lifs = nn.ModuleList(
            make_lif(beta=beta, threshold=threshold, reset=reset, **lif_kw) for _ in hidden
        )
        if readout == "membrane":
            self.out_beta = beta if out_beta is None else out_beta
            # never fires, so its surrogate is irrelevant; fast_sigmoid stays finite at -inf
            self.out = make_lif(
                beta=self.out_beta,
                threshold=float("inf"),
                reset="none",
                surrogate="fast_sigmoid",
                learn_beta=learn_beta,
            )
        else:
            self.out_beta = beta
            self.out = make_lif(beta=beta, threshold=threshold, reset=reset, **lif_kw)

    @property
    def neurons(self) -> list[nn.Module]:
        """The spiking layers in order, output last."""
        return [*self.lifs, self.out]

    def init_state(self, currents: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Fresh membrane potentials, one per layer, shaped like the given layer currents."""
        state = []
        for lif, cur in zip(self.neurons, currents, strict=True):
            frac = 0.0 if lif is self.out and self.readout == "membrane" else self.mem_init
            state.append(initial_mem(lif, cur, frac))
        return state

    def _state_like(self, batch: int, ref: torch.Tensor) -> list[torch.Tensor]:
        currents = [ref.new_zeros(batch, fc.out_features) for fc in self.fcs]
        return self.init_state(currents)

    def step(
        self,
        first_current: torch.Tensor,
        state: list[torch.Tensor],
    ) -> tuple[list[torch.Tensor], torch.Tensor, list[torch.Tensor]]:
        """Advance every layer by one timestep.

        Args:
            first_current: Output of the first ``Linear`` for this step, ``[B, H1]``.
            state: Membrane potentials from :meth:`init_state` or the previous step.

        Returns:
            ``(spikes per layer, output membrane, new state)``; the state is a new list.
        """
        spikes, new_state = [], []
        cur = first_current
        for i, lif in enumerate(self.neurons):
            if i > 0:
                cur = self.fcs[i](spikes[-1])
            spk, mem = lif(cur, state[i])
            spikes.append(spk)
            new_state.append(mem)
        return spikes, new_state[-1], new_state

    def simulate(
        self,
        features: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> HeadRecord:
        """Run ``T`` steps on pooled features ``[B, D]`` and keep every spike.

        Args:
            features: Pooled features.
            generator: Random generator for stochastic encodings.

        Returns:
            The :class:`HeadRecord`.
        """
        x = self.norm(features)
        steps = self.num_steps
        constant = get_encoding(self.encoding).constant
        in_spikes = None
        if constant:
            fixed = self.fcs[0](x)  # same current every step: compute it once
            inputs = None
        elif self.encoder is not None:
            inputs = in_spikes = integrate_and_fire(self.encoder, x, steps)
        else:
            inputs = encode(x, steps, self.encoding, generator)
        state = self._state_like(x.shape[0], x)
        per_layer: list[list[torch.Tensor]] = [[] for _ in self.neurons]
        mems = []
        try:
            for t in range(steps):
                cur = fixed if inputs is None else self.fcs[0](inputs[t])
                spikes, out_mem, state = self.step(cur, state)
                for store, spk in zip(per_layer, spikes, strict=True):
                    store.append(spk)
                mems.append(out_mem)
        finally:
            release_state(self)
        out_spikes = torch.stack(per_layer[-1])
        out_mem = torch.stack(mems)
        return HeadRecord(
            logits=self._read(out_spikes, out_mem),
            spikes=[torch.stack(s) for s in per_layer[:-1]],
            out_spikes=out_spikes,
            out_mem=out_mem,
            in_spikes=in_spikes,
        )

    def _read(self, out_spikes: torch.Tensor, out_mem: torch.Tensor) -> torch.Tensor:
        if self.readout == "count":
            return out_spikes.sum(0)
        if self.readout == "rate":
            return out_spikes.mean(0)
        # Final potential of a leaky integrator, divided by sum_k beta^k: the (recency
        # weighted) mean input current, equal to the ANN logit when the current is constant.
        beta = float(self.out.beta.detach().clamp(0, 1))
        steps = out_mem.shape[0]
        weight = float(steps) if beta == 1.0 else (1.0 - beta**steps) / (1.0 - beta)
        return out_mem[-1] / weight

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` from pooled features ``[B, D]`` (drop-in for timm's head)."""
        return self.simulate(features).logits
