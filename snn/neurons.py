"""LIF neurons built the one way this package uses them: explicit state, no globals.

snnTorch's ``Leaky`` accepts its membrane potential as an argument, but it also keeps the last
one on the module (``lif.mem``, ``lif.reset``) and registers every instance in the class-level
list ``SpikingNeuron.instances`` (used only by ``init_hidden=True``). Kept state ties the last
autograd graph to the module, which breaks ``copy.deepcopy`` (federated clients copy models) and
holds memory; the global list keeps every neuron alive. :func:`make_lif` and
:func:`release_state` remove both, so many satellites can share one process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

import snntorch
import torch
from torch import nn

from snn.surrogates import build_surrogate

__all__ = ["RESETS", "make_lif", "release_state", "initial_mem", "is_spiking_neuron",
           "recording_rates"]

RESETS = ("subtract", "zero", "none")


def make_lif(
    beta: float = 1.0,
    threshold: float = 1.0,
    surrogate: str = "fast_sigmoid",
    reset: str = "subtract",
    learn_beta: bool = False,
    learn_threshold: bool = False,
) -> snntorch.Leaky:
    """Build a ``snntorch.Leaky`` neuron meant to be driven with explicit state.

    Args:
        beta: Membrane decay per step (1.0 gives a non-leaky integrate-and-fire neuron).
        threshold: Firing threshold (``inf`` gives an integrator that never fires).
        surrogate: Surrogate-gradient name (see :func:`snn.surrogates.list_surrogates`).
        reset: ``"subtract"`` (keeps the residue; best for rate codes), ``"zero"`` or ``"none"``.
        learn_beta: Make ``beta`` a trainable parameter.
        learn_threshold: Make ``threshold`` a trainable parameter.

    Returns:
        The neuron; call it as ``spk, mem = lif(current, mem)``.
    """
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; expected one of {list(RESETS)}")
    lif = snntorch.Leaky(
        beta=beta,
        threshold=threshold,
        spike_grad=build_surrogate(surrogate),
        learn_beta=learn_beta,
        learn_threshold=learn_threshold,
        reset_mechanism=reset,
        init_hidden=False,
    )
    instances = snntorch.SpikingNeuron.instances
    for i in range(len(instances) - 1, -1, -1):
        if instances[i] is lif:
            del instances[i]
    return lif


def is_spiking_neuron(module: nn.Module) -> bool:
    """Whether ``module`` is an snnTorch spiking neuron (any ``SpikingNeuron`` subclass)."""
    return isinstance(module, snntorch.SpikingNeuron)


def initial_mem(lif: snntorch.Leaky, like: torch.Tensor, fraction: float = 0.0) -> torch.Tensor:
    """A fresh membrane state shaped like ``like``, set to ``fraction * threshold``.

    Starting at half the threshold (``fraction=0.5``) centres the rounding error of a rate code
    instead of always truncating (Bu et al., "Optimal ANN-SNN conversion for high-accuracy and
    ultra-low-latency spiking neural networks", ICLR 2022).
    """
    mem = torch.zeros_like(like)
    if fraction:
        threshold = lif.threshold
        if torch.isfinite(threshold).all():
            mem = mem + fraction * threshold.to(mem.dtype)
    return mem


def release_state(module: nn.Module) -> None:
    """Drop the membrane state snnTorch keeps on every neuron inside ``module``.

    Call after a simulation: the state lives in the caller's variables, and what the module
    kept would pin the autograd graph and make ``copy.deepcopy(module)`` fail.
    """
    for sub in module.modules():
        if isinstance(sub, snntorch.SpikingNeuron):
            mem = getattr(sub, "mem", None)
            if isinstance(mem, torch.Tensor):
                sub.mem = torch.zeros(0, device=mem.device, dtype=mem.dtype)
            if isinstance(getattr(sub, "reset", None), torch.Tensor):
                sub.reset = torch.zeros(0)


@contextlib.contextmanager
def recording_rates(modules: Iterable[nn.Module], rates: list[torch.Tensor]) -> Iterator[None]:
    """Append each firing neuron's mean spike output per call (differentiable) to ``rates`` while
    a forward runs, for a firing-rate penalty (spikes are the energy). Integrators (an infinite
    threshold, e.g. a membrane readout) never fire and are left out."""
    hooks = []
    for module in modules:
        for neuron in module.modules():
            if is_spiking_neuron(neuron) and torch.isfinite(neuron.threshold).all():
                hooks.append(neuron.register_forward_hook(
                    lambda _m, _i, out: rates.append(out[0].mean())))
    try:
        yield
    finally:
        for h in hooks:
            h.remove()
