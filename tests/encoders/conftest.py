"""Tiny link modules and tokens shared by the encoder tests (D=32, N=16: a 4x4 token grid)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from encoders import LinkModule, build_link

DIM, NUM_TOKENS = 32, 16

_CODEC_KWARGS: dict[str, dict[str, object]] = {
    "spike": {"dim": DIM, "code_dim": 8, "num_steps": 4},
    "factorized": {"dim": DIM, "num_tokens": NUM_TOKENS, "latent_dim": 8, "hidden_dim": 32},
    "hyperprior": {
        "dim": DIM,
        "num_tokens": NUM_TOKENS,
        "latent_dim": 8,
        "hidden_dim": 32,
        "hyper_dim": 4,
        "hyper_hidden_dim": 16,
    },
}


@pytest.fixture
def make_link() -> Callable[..., LinkModule]:
    """Build a small, seeded instance of a registered link (test-size kwargs for the codecs)."""

    def make(name: str, **overrides: object) -> LinkModule:
        torch.manual_seed(0)
        return build_link(name, **{**_CODEC_KWARGS.get(name, {}), **overrides})

    return make


@pytest.fixture
def tokens() -> torch.Tensor:
    """Three samples of ViT-like tokens ``[3, 16, 32]`` with one large outlier."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, NUM_TOKENS, DIM, generator=gen)
    x[0, 0, 0] = 40.0
    return x


@pytest.fixture
def toy_tokens() -> Callable[[int, int], torch.Tensor]:
    """Structured tokens: rank 4 and smooth over the token index, so a codec can learn them."""
    basis = torch.randn(4, DIM, generator=torch.Generator().manual_seed(123))
    pos = torch.linspace(-1, 1, NUM_TOKENS)
    shapes = torch.stack([pos, pos**2, torch.sin(3 * pos), torch.ones_like(pos)])

    def sample(batch: int, seed: int) -> torch.Tensor:
        coeff = torch.randn(batch, 4, 1, generator=torch.Generator().manual_seed(seed))
        return 2.0 * torch.einsum("bkn,kd->bnd", coeff * shapes, basis)

    return sample
