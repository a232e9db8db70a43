"""A spiking drop-in for the MLP of a timm transformer ``Block`` (attention stays ANN).

``fc1`` runs once on the real-valued tokens (its input does not change over time), LIF neurons
turn that current into spikes over ``T`` steps, ``fc2`` runs on the spikes at every step, and the
output is averaged over ``T``. Input and output are ``[B, N, D]``, so the module replaces
``block.mlp`` unchanged. With non-leaky neurons, reset by subtraction and a threshold ``lam``,
the firing rate approximates ``clamp(fc1(x), 0, lam) / lam``; scaling ``fc2`` by ``lam`` makes the
average approximate ``fc2(relu(fc1(x)))`` (Rueckauer et al. 2017), close to timm's GELU MLP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from snn.convert import robust_max
from snn.neurons import initial_mem, make_lif, release_state

__all__ = ["SpikingMlp", "swap_mlps"]


class SpikingMlp(nn.Module):
    """``fc1 -> LIF (T steps) -> fc2``, averaged over time; ``[B, N, D] -> [B, N, D_out]``.

    Args:
        in_features: Token width ``D``.
        hidden_features: Width of the spiking layer.
        out_features: Output width (default ``in_features``).
        num_steps: Timesteps ``T``.
        beta: Membrane decay (1.0: integrate-and-fire, best for rate codes).
        threshold: Firing threshold ``lam``.
        surrogate: Surrogate-gradient name.
        reset: Reset mechanism.
        mem_init: Initial membrane potential as a fraction of the threshold.
        bias: Whether ``fc1``/``fc2`` have biases.
        learn_beta: Train the decay.
        learn_threshold: Train the threshold.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int,
        out_features: int | None = None,
        num_steps: int = 4,
        beta: float = 1.0,
        threshold: float = 1.0,
        surrogate: str = "fast_sigmoid",
        reset: str = "subtract",
        mem_init: float = 0.5,
        bias: bool = True,
        learn_beta: bool = False,
        learn_threshold: bool = False,
    ) -> None:
        super().__init__()
        if num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {num_steps}")
        out_features = out_features or in_features
        self.num_steps = num_steps
        self.mem_init = mem_init
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.lif = make_lif(beta, threshold, surrogate, reset, learn_beta, learn_threshold)
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)

    @classmethod
    def from_mlp(
        cls,
        mlp: nn.Module,
        num_steps: int = 4,
        threshold: float = 1.0,
        **kwargs: object,
    ) -> SpikingMlp:
        """Build from a timm ``Mlp`` (``fc1``, ``act``, ``norm``, ``fc2``), copying its weights.

        ``fc1`` is copied as is and ``fc2`` is scaled by ``threshold``, because a spike stands
        for ``threshold`` units of activation. Choose the threshold from data with
        :func:`snn.convert.robust_max` (or let :func:`swap_mlps` do it).

        Args:
            mlp: The ANN MLP.
            num_steps: Timesteps ``T``.
            threshold: Firing threshold (the activation a rate of 1 stands for).
            **kwargs: Other :class:`SpikingMlp` arguments.

        Returns:
            The spiking MLP, on the same device and dtype as ``mlp``.
        """
        fc1, fc2 = getattr(mlp, "fc1", None), getattr(mlp, "fc2", None)
        if not isinstance(fc1, nn.Linear) or not isinstance(fc2, nn.Linear):
            raise ValueError(
                f"{type(mlp).__name__} has no Linear fc1/fc2; only timm's Mlp is supported"
            )
        if not isinstance(getattr(mlp, "norm", nn.Identity()), nn.Identity):
            raise ValueError("an MLP with a norm between fc1 and fc2 cannot run on binary spikes")
        if fc1.weight.shape[0] != fc2.weight.shape[1]:
            raise ValueError("fc1 and fc2 widths do not match")
        if (fc1.bias is None) != (fc2.bias is None):
            raise ValueError("fc1 and fc2 must both have or both lack a bias")
        new = cls(
            fc1.in_features,
            fc1.out_features,
            fc2.out_features,
            num_steps=num_steps,
            threshold=threshold,
            bias=fc1.bias is not None,
            **kwargs,
        )
        with torch.no_grad():
            new.fc1.weight.copy_(fc1.weight)
            new.fc2.weight.copy_(fc2.weight * threshold)
            if fc1.bias is not None:
                new.fc1.bias.copy_(fc1.bias)
                new.fc2.bias.copy_(fc2.bias)
        return new.to(device=fc1.weight.device, dtype=fc1.weight.dtype)

    def forward(self, x: torch.Tensor, return_spikes: bool = False):
        """Average of ``fc2(spikes_t)`` over ``T`` steps.

        Args:
            x: Tokens ``[B, N, D]`` (any leading shape works).
            return_spikes: Also return the spikes ``[T, B, N, H]``.

        Returns:
            ``[B, N, D_out]``, or ``(output, spikes)`` when ``return_spikes``.
        """
        cur = self.fc1(x)
        mem = initial_mem(self.lif, cur, self.mem_init)
        out = None
        spikes = []
        try:
            for _ in range(self.num_steps):
                spk, mem = self.lif(cur, mem)
                y = self.fc2(spk)
                out = y if out is None else out + y
                if return_spikes:
                    spikes.append(spk)
        finally:
            release_state(self)
        out = out / self.num_steps
        return (out, torch.stack(spikes)) if return_spikes else out


def swap_mlps(
    blocks: Sequence[nn.Module],
    indices: Iterable[int],
    num_steps: int = 4,
    calib_forward: Callable[[], object] | None = None,
    percentile: float = 99.9,
    threshold: float = 1.0,
    **kwargs: object,
) -> list[SpikingMlp]:
    """Replace ``blocks[i].mlp`` by a :class:`SpikingMlp` copied from it, for each chosen ``i``.

    Args:
        blocks: The transformer blocks (``vit.blocks``, or a split part's blocks).
        indices: Which blocks to convert (negative indices count from the end).
        num_steps: Timesteps ``T`` of the spiking MLPs.
        calib_forward: Optional callable that runs the containing model on calibration data
            (e.g. ``lambda: vit(x_cal)``); each threshold is then set to the ``percentile`` of
            that block's positive hidden activations (Rueckauer et al. 2017).
        percentile: Percentile for the robust maximum.
        threshold: Threshold used when ``calib_forward`` is None.
        **kwargs: Other :class:`SpikingMlp` arguments (``beta``, ``surrogate``, ...).

    Returns:
        The new modules, in the order of ``indices``.
    """
    blocks = list(blocks)
    chosen = [i % len(blocks) for i in indices]
    thresholds = {i: threshold for i in chosen}
    if calib_forward is not None:
        acts: dict[int, list[torch.Tensor]] = {i: [] for i in chosen}
        hooks = []
        for i in chosen:
            mlp = blocks[i].mlp
            act = getattr(mlp, "act", nn.ReLU())

            def grab(_m, _inp, out, i=i, act=act):
                acts[i].append(act(out.detach()).flatten())

            hooks.append(mlp.fc1.register_forward_hook(grab))
        try:
            with torch.no_grad():
                calib_forward()
        finally:
            for h in hooks:
                h.remove()
        thresholds = {i: robust_max(torch.cat(acts[i]), percentile) for i in chosen}
    new = []
    for i in chosen:
        spiking = SpikingMlp.from_mlp(blocks[i].mlp, num_steps, thresholds[i], **kwargs)
        blocks[i].mlp = spiking
        new.append(spiking)
    return new
