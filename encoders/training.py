"""Training helpers a task (or a quick pre-training script) needs around a link module.

CompressAI trains the entropy-model quantiles with their own loss and optimizer (``aux_loss``);
everything else follows the task loss plus a rate term. ``split_parameters`` makes that split
once, by CompressAI's naming convention, so every caller splits the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from encoders.base import LinkModule
from encoders.rate import estimated_bits

__all__ = ["split_parameters", "reconstruction_step"]


def split_parameters(module: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Trainable parameters as ``(main, aux)``: ``aux`` are the ``EntropyBottleneck`` quantiles.

    Args:
        module: Any module holding link modules (a whole split model works too).
    """
    main, aux = [], []
    for name, param in module.named_parameters():
        if param.requires_grad:
            (aux if name.endswith(".quantiles") or name == "quantiles" else main).append(param)
    return main, aux


def reconstruction_step(
    link: LinkModule,
    tokens: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    aux_optimizer: torch.optim.Optimizer | None = None,
    lmbda: float = 1.0,
) -> dict[str, float]:
    """One rate + ``lmbda`` * MSE step on the tokens themselves (no task head).

    Useful to warm a codec up before task-oriented fine-tuning, and in tests. The rate term is
    bits per token value, so ``lmbda`` is comparable across widths.

    Returns:
        ``loss``, ``mse``, ``bits`` (estimated bits per sample) and ``aux`` as floats.
    """
    link.train()
    out = link(tokens)
    mse = F.mse_loss(out["y_hat"], tokens)
    bits = estimated_bits(out["likelihoods"])
    rate = bits.mean() / tokens[0].numel() if bits.numel() else mse.new_zeros(())
    loss = rate + lmbda * mse
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    aux = link.aux_loss()
    if aux_optimizer is not None and aux.requires_grad:
        aux_optimizer.zero_grad()
        aux.backward()
        aux_optimizer.step()
    mean_bits = float(bits.detach().mean()) if bits.numel() else 0.0
    return {
        "loss": float(loss.detach()),
        "mse": float(mse.detach()),
        "bits": mean_bits,
        "aux": float(aux.detach()),
    }
