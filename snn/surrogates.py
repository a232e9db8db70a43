"""Surrogate gradients for the spike nonlinearity, selectable by name.

A spike is a Heaviside step, whose derivative is zero almost everywhere; training with
backpropagation replaces that derivative by a smooth stand-in (Neftci, Mostafa & Zenke,
IEEE Signal Processing Magazine 2019). Which stand-in works best is an empirical question, so
experiments pick one by name from YAML; the functions themselves are snnTorch's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from snntorch import surrogate

__all__ = [
    "NamedSurrogate",
    "SpikeFn",
    "build_surrogate",
    "list_surrogates",
    "register_surrogate",
]

SpikeFn = Callable[[torch.Tensor], torch.Tensor]
"""Maps ``mem - threshold`` to spikes in {0, 1} with a surrogate derivative."""

_SURROGATES: dict[str, Callable[..., SpikeFn]] = {}


def register_surrogate(
    name: str,
) -> Callable[[Callable[..., SpikeFn]], Callable[..., SpikeFn]]:
    """Decorator that makes a surrogate-gradient factory selectable by ``name``.

    Args:
        name: The key used in configs.

    Returns:
        The decorator; it returns the factory unchanged.
    """

    def wrap(factory: Callable[..., SpikeFn]) -> Callable[..., SpikeFn]:
        if name in _SURROGATES:
            raise ValueError(f"surrogate {name!r} is already registered")
        _SURROGATES[name] = factory
        return factory

    return wrap


def list_surrogates() -> list[str]:
    """Names of every registered surrogate gradient, sorted."""
    return sorted(_SURROGATES)


def build_surrogate(name: str, **kwargs: float) -> SpikeFn:
    """Build a spike function with the named surrogate gradient.

    Args:
        name: A registered name (see :func:`list_surrogates`).
        **kwargs: Shape parameters of that surrogate (``slope``, ``alpha``, ...).

    Returns:
        A callable for ``snntorch.Leaky(spike_grad=...)``.

    Raises:
        ValueError: If ``name`` is unknown; the message lists the valid names.
    """
    return NamedSurrogate(name, **kwargs)


class NamedSurrogate:
    """A spike function that remembers its registry name and shape parameters.

    Why: the factories return closures, which ``pickle`` cannot store, so ``torch.save`` of a
    whole model (and anything else that pickles it) failed; this wrapper pickles as
    ``(name, kwargs)`` and rebuilds the closure from the registry when loaded.

    Args:
        name: A registered surrogate name.
        **kwargs: Its shape parameters.
    """

    def __init__(self, name: str, **kwargs: float) -> None:
        if name not in _SURROGATES:
            raise ValueError(f"unknown surrogate {name!r}; expected one of {list_surrogates()}")
        self.name = name
        self.kwargs = dict(kwargs)
        self._fn = _SURROGATES[name](**kwargs)

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        return self._fn(u)

    def __getstate__(self) -> dict[str, object]:
        return {"name": self.name, "kwargs": self.kwargs}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["name"], **state["kwargs"])

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return f"NamedSurrogate({self.name!r}{args})"


@register_surrogate("fast_sigmoid")
def _fast_sigmoid(slope: float = 25.0) -> SpikeFn:
    """SuperSpike's fast sigmoid, 1/(1+k|u|)^2 (Zenke & Ganguli, Neural Computation 2018)."""
    return surrogate.fast_sigmoid(slope=slope)


@register_surrogate("atan")
def _atan(alpha: float = 2.0) -> SpikeFn:
    """Arctangent (Fang et al., ICCV 2021); snnTorch's default."""
    return surrogate.atan(alpha=alpha)


class _Spike(torch.autograd.Function):
    """Heaviside forward (``u > 0``); ``grad_out * derivative(u)`` backward."""

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        u: torch.Tensor,
        derivative: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        ctx.save_for_backward(u)
        ctx.derivative = derivative
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_out: torch.Tensor):
        (u,) = ctx.saved_tensors
        return grad_out * ctx.derivative(u), None


def _with_derivative(derivative: Callable[[torch.Tensor], torch.Tensor]) -> SpikeFn:
    def spike(u: torch.Tensor) -> torch.Tensor:
        return _Spike.apply(u, derivative)

    return spike


@register_surrogate("sigmoid")
def _sigmoid(slope: float = 25.0) -> SpikeFn:
    """Derivative of a logistic with the given slope, ``k * s(ku) * (1 - s(ku))``.

    Written here because ``snntorch.surrogate.sigmoid`` (1.0.0) computes ``exp(-k u)``
    directly, which overflows to ``inf / inf = NaN`` once ``u < -88 / k`` (``u < -3.5`` at k=25).
    """

    def derivative(u: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(slope * u)
        return slope * s * (1.0 - s)

    return _with_derivative(derivative)


@register_surrogate("triangular")
def _triangular(width: float = 1.0) -> SpikeFn:
    """Triangle ``max(0, 1 - |u|/w) / w`` around the threshold (Esser et al., PNAS 2016).

    Written here because ``snntorch.surrogate.triangular`` (1.0.0) returns ``+w`` below the
    threshold and ``-w`` above it, which flips the gradient's sign for firing neurons.
    """

    def derivative(u: torch.Tensor) -> torch.Tensor:
        return (1.0 - u.abs() / width).clamp(min=0.0) / width

    return _with_derivative(derivative)


@register_surrogate("straight_through")
def _straight_through() -> SpikeFn:
    """Identity derivative (Bengio et al. 2013); a baseline, not usually the best."""
    return surrogate.straight_through_estimator()


@register_surrogate("spike_rate_escape")
def _spike_rate_escape(beta: float = 1.0, slope: float = 25.0) -> SpikeFn:
    """Escape-noise derivative of a stochastic neuron (Pfister et al. 2006)."""
    return surrogate.spike_rate_escape(beta=beta, slope=slope)
