"""Spiking transformer blocks for the satellite side of the cut: every synapse is driven by spikes.

A :class:`SpikingBlock` replaces a timm ``Block`` one for one (``[B, N, D] -> [B, N, D]``):

- The residual stream stays real-valued (the membrane shortcut of the spike-driven transformer,
  Yao et al., NeurIPS 2023); each branch reads it through its LayerNorm and a
  :class:`TernaryEncoder`: two integrate-and-fire populations turn the normalised tokens into
  spikes in {-1, 0, 1} over ``T`` steps (ternary spikes, Guo et al., AAAI 2024), so every
  ``Linear`` after it does additions only (synaptic operations, counted by :mod:`snn.energy`).
- The MLP is ``fc1 -> LIF -> fc2`` on spikes (binary hidden spikes).
- Attention is either ``"ann"`` (timm's softmax attention on the real normalised tokens: dense
  MACs, kept to isolate what spiking the MLP buys) or ``"ssa"``: spiking self-attention in the
  style of Spikformer (Zhou et al., ICLR 2023): Q, K and V are binary spike maps, the attention
  is ``Q (K^T V) * scale`` without softmax, computed by :class:`snn.energy.Matmul` so the ledger
  counts its additions, and a LIF turns it into spikes for the projection.
- Each branch's output is averaged over the ``T`` steps and added to the stream.

Conversion (:meth:`SpikingBlock.from_block`) copies the ANN weights and sets each encoder's
threshold to a robust maximum of what it sees on calibration tokens, scaling the next layer by
it (Rueckauer et al. 2017), so the MLP branch starts as a quantised copy of the ANN one with
ReLU in place of GELU; the spiking attention has no ANN counterpart and must be fine-tuned
(surrogate gradients). Its Q/K/V and attention thresholds are trainable and not constrained:
check them after training (a threshold at or below zero fires at every step).
LayerNorms and LayerScale stay real-valued and are not counted (as everywhere in the ledger).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from snn.convert import robust_max
from snn.energy import Matmul
from snn.neurons import initial_mem, make_lif, release_state

__all__ = [
    "ATTENTIONS",
    "SpikingAttention",
    "SpikingBlock",
    "TernaryEncoder",
    "convert_blocks",
]

ATTENTIONS = ("ann", "ssa")
"""``ann``: timm softmax attention on real tokens (dense); ``ssa``: spiking self-attention."""


def _check_steps(num_steps: int) -> None:
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps={num_steps!r}; a spiking block needs an integer T >= 1")


def _run_lif(lif: nn.Module, currents: torch.Tensor, mem_init: float) -> torch.Tensor:
    """Spikes ``[T, ...]`` of one neuron population driven by ``currents[t]`` at step ``t``."""
    mem = initial_mem(lif, currents[0], mem_init)
    spikes = []
    for cur in currents:
        spk, mem = lif(cur, mem)
        spikes.append(spk)
    return torch.stack(spikes)


class TernaryEncoder(nn.Module):
    """Constant real input ``[...]`` -> spikes ``[T, ...]`` in {-1, 0, 1}.

    Two integrate-and-fire populations (reset by subtraction, starting at half the threshold)
    see ``x`` and ``-x``; over ``T`` steps their spike count difference is ``T * x / threshold``
    rounded and clipped to ``[-T, T]``, so the time average stands for ``x / threshold``.

    Args:
        num_steps: Timesteps ``T``.
        threshold: Firing threshold (set by calibration).
        surrogate: Surrogate-gradient name.
    """

    def __init__(self, num_steps: int, threshold: float = 1.0,
                 surrogate: str = "fast_sigmoid") -> None:
        super().__init__()
        _check_steps(num_steps)
        self.num_steps = num_steps
        self.pos = make_lif(1.0, threshold, surrogate)
        self.neg = make_lif(1.0, threshold, surrogate)

    @property
    def threshold(self) -> float:
        return float(self.pos.threshold)

    def set_threshold(self, value: float) -> None:
        """Both populations fire at ``value``."""
        self.pos.threshold.fill_(value)
        self.neg.threshold.fill_(value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.expand(self.num_steps, *x.shape)
        try:
            return _run_lif(self.pos, steps, 0.5) - _run_lif(self.neg, -steps, 0.5)
        finally:
            release_state(self)


class SpikingAttention(nn.Module):
    """Spiking self-attention on ternary input spikes ``[T, B, N, D]`` -> ``[T, B, N, D]``.

    ``q, k, v = LIF(qkv(s))`` (binary), ``a = LIF(Q (K^T V) * scale)`` per head, ``proj(a)``.
    ``K^T V`` first: ``N`` is larger than the head width, so it is the cheaper order.

    Args:
        dim: Token width.
        num_heads: Attention heads.
        num_steps: Timesteps ``T``.
        beta: Membrane decay of the Q/K/V and attention neurons (Spikformer: tau 2, beta 0.5).
        surrogate: Surrogate-gradient name.
    """

    def __init__(self, dim: int, num_heads: int, num_steps: int, beta: float = 0.5,
                 surrogate: str = "fast_sigmoid") -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        _check_steps(num_steps)
        self.num_heads, self.head_dim, self.num_steps = num_heads, dim // num_heads, num_steps
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_lif, self.k_lif, self.v_lif, self.attn_lif = (
            make_lif(beta, 1.0, surrogate, learn_threshold=True) for _ in range(4))
        self.kv_matmul = Matmul()
        self.q_matmul = Matmul()
        self.proj = nn.Linear(dim, dim)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        steps, batch, tokens, dim = spikes.shape
        qkv = self.qkv(spikes).reshape(steps, batch, tokens, 3, self.num_heads, self.head_dim)
        qkv = qkv.permute(3, 0, 1, 4, 2, 5)  # [3, T, B, H, N, d]
        try:
            q = _run_lif(self.q_lif, qkv[0], 0.0)
            k = _run_lif(self.k_lif, qkv[1], 0.0)
            v = _run_lif(self.v_lif, qkv[2], 0.0)
            kv = self.kv_matmul(k.transpose(-2, -1), v)  # [T, B, H, d, d], integer counts
            att = self.q_matmul(q, kv) * self.scale       # [T, B, H, N, d]
            out = _run_lif(self.attn_lif, att, 0.0)
        finally:
            release_state(self)
        out = out.permute(0, 1, 3, 2, 4).reshape(steps, batch, tokens, dim)
        return self.proj(out)


class SpikingBlockMlp(nn.Module):
    """``fc1 -> LIF -> fc2`` on ternary input spikes ``[T, B, N, D]`` (binary hidden spikes)."""

    def __init__(self, dim: int, hidden: int, num_steps: int,
                 surrogate: str = "fast_sigmoid") -> None:
        super().__init__()
        _check_steps(num_steps)
        self.fc1 = nn.Linear(dim, hidden)
        self.lif = make_lif(1.0, 1.0, surrogate)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        try:
            hidden = _run_lif(self.lif, self.fc1(spikes), 0.5)
        finally:
            release_state(self)
        return self.fc2(hidden)


class SpikingBlock(nn.Module):
    """A transformer block whose branches run on spikes; ``[B, N, D] -> [B, N, D]``.

    Args:
        dim: Token width.
        num_heads: Attention heads.
        mlp_hidden: MLP hidden width.
        num_steps: Timesteps ``T``.
        attention: One of :data:`ATTENTIONS`.
        surrogate: Surrogate-gradient name.
        eps: LayerNorm epsilon.
    """

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, num_steps: int = 4,
                 attention: str = "ssa", surrogate: str = "fast_sigmoid",
                 eps: float = 1e-6) -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention={attention!r}; expected one of {list(ATTENTIONS)}")
        _check_steps(num_steps)
        self.attention, self.num_steps = attention, num_steps
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.ls1: nn.Module = nn.Identity()
        if attention == "ssa":
            self.enc1: nn.Module = TernaryEncoder(num_steps, surrogate=surrogate)
            self.attn: nn.Module = SpikingAttention(dim, num_heads, num_steps, surrogate=surrogate)
        else:
            from timm.models.vision_transformer import Attention

            self.enc1 = nn.Identity()
            self.attn = Attention(dim, num_heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.ls2: nn.Module = nn.Identity()
        self.enc2 = TernaryEncoder(num_steps, surrogate=surrogate)
        self.mlp = SpikingBlockMlp(dim, mlp_hidden, num_steps, surrogate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        if self.attention == "ssa":
            x = x + self.ls1(self.attn(self.enc1(h)).mean(0))
        else:
            x = x + self.ls1(self.attn(h))
        return x + self.ls2(self.mlp(self.enc2(self.norm2(x))).mean(0))

    @classmethod
    @torch.no_grad()
    def from_block(cls, block: nn.Module, tokens: torch.Tensor, num_steps: int = 4,
                   attention: str = "ssa", surrogate: str = "fast_sigmoid",
                   percentile: float = 99.9) -> SpikingBlock:
        """Convert a timm ``Block``, calibrating thresholds on its input ``tokens`` ``[B, N, D]``.

        Raises:
            ValueError: For a block that is not timm's pre-norm ``Block`` with a ``Linear`` MLP.
        """
        try:
            attn, mlp = block.attn, block.mlp
            dim, heads, hidden = attn.qkv.in_features, attn.num_heads, mlp.fc1.out_features
        except AttributeError as err:
            raise ValueError(f"{type(block).__name__} is not a timm transformer Block "
                             f"(norm1, attn.qkv, norm2, mlp.fc1/fc2): {err}") from err
        if not isinstance(getattr(mlp, "norm", nn.Identity()), nn.Identity):
            raise ValueError("an MLP with a norm between fc1 and fc2 cannot run on binary spikes")
        new = cls(dim, heads, hidden, num_steps, attention, surrogate, eps=block.norm1.eps)
        new.to(device=tokens.device, dtype=tokens.dtype)
        new.norm1.load_state_dict(block.norm1.state_dict())
        new.norm2.load_state_dict(block.norm2.state_dict())
        new.ls1, new.ls2 = block.ls1, block.ls2
        h1 = block.norm1(tokens)
        if attention == "ssa":
            theta = robust_max(h1.abs(), percentile)
            new.enc1.set_threshold(theta)
            new.attn.qkv.weight.copy_(attn.qkv.weight * theta)
            new.attn.qkv.bias.copy_(attn.qkv.bias)
            new.attn.proj.load_state_dict(attn.proj.state_dict())
            new._calibrate_attention(h1, percentile)
        else:
            new.attn.load_state_dict(attn.state_dict())
        # the MLP is calibrated on what the (spiking) attention branch really feeds it
        branch = new.attn(new.enc1(h1)).mean(0) if attention == "ssa" else attn(h1)
        h2 = block.norm2(tokens + block.ls1(branch))
        theta2 = robust_max(h2.abs(), percentile)
        lam = robust_max(mlp.fc1(h2).relu(), percentile)
        new.enc2.set_threshold(theta2)
        new.mlp.fc1.weight.copy_(mlp.fc1.weight * theta2 / lam)
        new.mlp.fc1.bias.copy_(mlp.fc1.bias / lam)
        new.mlp.fc2.weight.copy_(mlp.fc2.weight * lam)
        new.mlp.fc2.bias.copy_(mlp.fc2.bias)
        return new

    @torch.no_grad()
    def _calibrate_attention(self, h: torch.Tensor, percentile: float) -> None:
        """Q/K/V thresholds at a robust maximum of their currents; the attention neuron's at
        that of ``Q (K^T V) * scale``, with the projection scaled by it (a spike stands for it)."""
        att = self.attn
        spikes = self.enc1(h)
        steps, batch, tokens, dim = spikes.shape
        qkv = att.qkv(spikes).reshape(steps, batch, tokens, 3, att.num_heads, att.head_dim)
        qkv = qkv.permute(3, 0, 1, 4, 2, 5)
        binary = []
        for lif, cur in zip((att.q_lif, att.k_lif, att.v_lif), qkv, strict=True):
            lif.threshold.fill_(max(robust_max(cur.relu(), percentile) / 2, 1e-3))
            binary.append(_run_lif(lif, cur, 0.0))
        release_state(att)
        q, k, v = binary
        a = (q @ (k.transpose(-2, -1) @ v)) * att.scale
        lam = max(robust_max(a, percentile) / 2, 1e-3)
        att.attn_lif.threshold.fill_(lam)
        att.proj.weight.mul_(lam)


@torch.no_grad()
def convert_blocks(blocks: nn.ModuleList, indices: Sequence[int], tokens: torch.Tensor,
                   num_steps: int = 4, attention: str = "ssa",
                   surrogate: str = "fast_sigmoid") -> list[SpikingBlock]:
    """Replace ``blocks[i]`` for ``i`` in ``indices`` by converted :class:`SpikingBlock`.

    ``tokens`` are the calibration tokens entering ``blocks[0]``; they are run through the
    blocks in order, so each spiking block is calibrated on what the (spiking) blocks before
    it really produce.

    Raises:
        ValueError: For an index outside ``0..len(blocks)-1``.
    """
    bad = [i for i in indices if not 0 <= i < len(blocks)]
    if bad:
        raise ValueError(f"block indices {bad} are outside 0..{len(blocks) - 1}")
    chosen, new, x = set(indices), [], tokens
    for i in range(max(chosen, default=-1) + 1):
        if i in chosen:
            blocks[i] = SpikingBlock.from_block(blocks[i], x, num_steps, attention, surrogate)
            new.append(blocks[i])
        x = blocks[i](x)
    return new

