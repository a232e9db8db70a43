"""Input encodings: how real-valued features become a time-first input ``[T, B, ...]``.

``direct`` feeds the same analogue current at every step (Rueckauer et al. 2017; Wu et al.
2019): the first layer then runs once as an ordinary ANN layer, so spiking models know to
compute it once (``Encoding.constant``). ``rate`` draws Bernoulli spikes whose probability is
the value (snnTorch's ``spikegen.rate`` convention, values clipped to [0, 1]); ``rate_sigmoid``
squashes signed features (LayerNorm outputs) with a logistic first. Rate codes pass gradients
straight through the sampling, so encoders in front of them still train.

``if`` drives a layer of integrate-and-fire neurons (threshold 1, subtract reset, starting at
half the threshold) with the value as a constant current: a deterministic rate code with about
``round(T * x)`` spikes for ``x`` in [0, 1], trained through the neurons' surrogate gradient.
Unlike ``direct`` it makes the first synaptic layer spike-driven (accumulates, not MACs), and
unlike ``rate`` it draws no random numbers. A :class:`~snn.head.SpikingHead` holds these
neurons as a module (``Encoding.neurons``), so their updates and spikes are counted and their
firing rate can be penalised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from snn.neurons import initial_mem, make_lif, release_state

__all__ = [
    "Encoding",
    "encode",
    "get_encoding",
    "integrate_and_fire",
    "list_encodings",
    "make_encoder_neurons",
    "register_encoding",
]

EncodeFn = Callable[[torch.Tensor, int, "torch.Generator | None"], torch.Tensor]


@dataclass(frozen=True)
class Encoding:
    """A named input encoding.

    Attributes:
        name: Registry key.
        fn: ``fn(x [B, ...], num_steps, generator) -> [T, B, ...]``.
        constant: True when every step carries the same value (``direct``), so the first
            synaptic layer can be computed once instead of ``T`` times.
        neurons: True when the code is produced by spiking neurons (``if``) that a model should
            hold as a module (:func:`make_encoder_neurons`), so they are counted like any layer.
    """

    name: str
    fn: EncodeFn
    constant: bool
    neurons: bool = False


_ENCODINGS: dict[str, Encoding] = {}


def register_encoding(
    name: str, constant: bool = False, neurons: bool = False
) -> Callable[[EncodeFn], EncodeFn]:
    """Decorator that makes an encoding function selectable by ``name``."""

    def wrap(fn: EncodeFn) -> EncodeFn:
        if name in _ENCODINGS:
            raise ValueError(f"encoding {name!r} is already registered")
        _ENCODINGS[name] = Encoding(name=name, fn=fn, constant=constant, neurons=neurons)
        return fn

    return wrap


def list_encodings() -> list[str]:
    """Names of every registered encoding, sorted."""
    return sorted(_ENCODINGS)


def get_encoding(name: str) -> Encoding:
    """Look up an encoding; an unknown name lists the valid ones."""
    if name not in _ENCODINGS:
        raise ValueError(f"unknown encoding {name!r}; expected one of {list_encodings()}")
    return _ENCODINGS[name]


def encode(
    x: torch.Tensor,
    num_steps: int,
    method: str = "direct",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Encode ``x`` ``[B, ...]`` into a time-first tensor ``[num_steps, B, ...]``.

    Args:
        x: Values to encode.
        num_steps: Number of timesteps ``T`` (at least 1).
        method: A registered encoding name.
        generator: Random generator for stochastic encodings (reproducible runs).

    Returns:
        The encoded input, time first.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    return get_encoding(method).fn(x, num_steps, generator)


class _BernoulliST(torch.autograd.Function):
    """Bernoulli sample in the forward pass, identity gradient to the probability."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        p: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        return torch.bernoulli(p.detach(), generator=generator)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor):
        return grad, None


def _rate_from_prob(p: torch.Tensor, num_steps: int, gen: torch.Generator | None) -> torch.Tensor:
    probs = p.unsqueeze(0).expand(num_steps, *p.shape)
    return _BernoulliST.apply(probs.contiguous(), gen)


@register_encoding("direct", constant=True)
def _direct(x: torch.Tensor, num_steps: int, gen: torch.Generator | None) -> torch.Tensor:
    del gen
    return x.unsqueeze(0).expand(num_steps, *x.shape)


@register_encoding("rate")
def _rate(x: torch.Tensor, num_steps: int, gen: torch.Generator | None) -> torch.Tensor:
    return _rate_from_prob(x.clamp(0.0, 1.0), num_steps, gen)


@register_encoding("rate_sigmoid")
def _rate_sigmoid(x: torch.Tensor, num_steps: int, gen: torch.Generator | None) -> torch.Tensor:
    return _rate_from_prob(torch.sigmoid(x), num_steps, gen)


def make_encoder_neurons(surrogate: str = "fast_sigmoid") -> nn.Module:
    """The integrate-and-fire neurons of the ``if`` code: no leak, threshold 1, subtract reset."""
    return make_lif(beta=1.0, threshold=1.0, surrogate=surrogate, reset="subtract")


def integrate_and_fire(
    neurons: nn.Module, x: torch.Tensor, num_steps: int, mem_init: float = 0.5
) -> torch.Tensor:
    """Drive ``neurons`` with the constant current ``x`` for ``num_steps``; spikes ``[T, B, ...]``.

    Starting at ``mem_init`` times the threshold rounds the count (``round(T * x)``) instead of
    truncating it (Bu et al., ICLR 2022).
    """
    mem = initial_mem(neurons, x, mem_init)
    spikes = []
    try:
        for _ in range(num_steps):
            spk, mem = neurons(x, mem)
            spikes.append(spk)
    finally:
        release_state(neurons)
    return torch.stack(spikes)


@register_encoding("if", neurons=True)
def _integrate_and_fire(x: torch.Tensor, num_steps: int, gen: torch.Generator | None) -> torch.Tensor:
    del gen
    return integrate_and_fire(make_encoder_neurons(), x, num_steps)
