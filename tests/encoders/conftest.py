"""Tiny link modules and tokens shared by the encoder tests (D=32, N=16: a 4x4 token grid)."""

from __future__ import annotations

import random
import re
import struct
from collections.abc import Callable

import pytest
import torch

import snn.link  # noqa: F401  (registers "spike": plugins register on import, and are tested too)
from encoders import CODEC_IDS, FORMAT_VERSION, LinkModule, build_for_cut, link_spec
from encoders.header import MAGIC

DIM, NUM_TOKENS = 32, 16
TINY_OPTIONS: dict[str, object] = {
    "latent_dim": 8,
    "hidden_dim": 32,
    "hyper_dim": 4,
    "hyper_hidden_dim": 16,
    "num_steps": 4,
}
"""Shared codec options for a tiny cut, as ``CodecTask`` passes them; each link takes its own."""


@pytest.fixture
def make_link() -> Callable[..., LinkModule]:
    """Build a small, seeded instance of a registered link for the ``[16, 32]`` cut.

    The registry builds it (``build_for_cut``), so a new link needs no entry here; keyword
    arguments are exact constructor overrides.
    """

    def make(name: str, **overrides: object) -> LinkModule:
        torch.manual_seed(0)
        return build_for_cut(name, DIM, NUM_TOKENS, TINY_OPTIONS, overrides)

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


@pytest.fixture
def check_entry(make_link, tokens) -> Callable[[str], None]:
    """The contract every registry entry must meet, checked on the tiny ``[16, 32]`` cut.

    ``test_link_registry.py`` runs it for every registered link, so a new entry is covered by
    registering it; a new codec's own test may call it as well. It checks: the entry builds for
    the cut through its ``cut_kwargs``; ``forward`` returns ``y_hat`` and ``likelihoods``; the
    payload header names the entry's wire id and token shape; ``decompress(compress(x))`` gives
    what ``forward`` gives (exactly ``x`` for lossless links, within 1/30 of each sample's value
    range for training-free lossy ones); a payload of another codec is refused by name; and
    truncated or damaged payloads raise ``ValueError`` (a few seeds).
    """

    def check(name: str) -> None:
        spec = link_spec(name)
        link = make_link(name)
        assert type(link) is spec.cls and isinstance(link, LinkModule)
        assert (link.link_name, link.codec_id) == (name, spec.codec_id) == (name, CODEC_IDS[name])
        # forward: the training contract
        out = link(tokens)
        assert set(out) == {"y_hat", "likelihoods"} and isinstance(out["likelihoods"], dict)
        assert out["y_hat"].shape == tokens.shape and torch.isfinite(out["y_hat"]).all()
        assert link.aux_loss().shape == ()
        # real bytes behind the header
        link.eval()
        link.update(force=True)
        payloads = link.compress(tokens)
        assert len(payloads) == len(tokens) and all(isinstance(p, bytes) for p in payloads)
        for p in payloads:
            magic, version, cid, _, n, d = struct.unpack_from(">2sBBBHH", p)
            assert (magic, version, cid, n, d) == (MAGIC, FORMAT_VERSION, spec.codec_id, *tokens.shape[1:])
        decoded = link.decompress(payloads, tokens.shape)
        with torch.no_grad():
            expected = link(tokens)["y_hat"]
        assert decoded.shape == tokens.shape and decoded.dtype == torch.float32
        torch.testing.assert_close(decoded, expected, rtol=0, atol=1e-5)
        if spec.lossless:
            assert torch.equal(decoded, tokens)
        elif not spec.learned:
            span = tokens.flatten(1).amax(1) - tokens.flatten(1).amin(1)
            assert ((decoded - tokens).abs().flatten(1).amax(1) <= span / 30).all()
        # the header names the codec: a payload re-labelled with another id is refused by name
        p = payloads[0]
        other_id = next(i for i in range(256) if i != spec.codec_id)
        relabelled = p[:3] + bytes([other_id]) + p[4:]
        with pytest.raises(ValueError, match=re.escape(f"expected {name!r}")):
            link.decompress([relabelled], tokens.shape[1:])
        # fuzz: any cut or flipped byte is a ValueError, never garbage or another exception
        for seed in range(3):
            rng = random.Random(seed)
            for _ in range(8):
                bad = bytearray(p)
                bad[rng.randrange(len(bad))] ^= rng.randrange(1, 256)
                with pytest.raises(ValueError):
                    link.decompress([bytes(bad)], tokens.shape[1:])
                with pytest.raises(ValueError):
                    link.decompress([p[: rng.randrange(len(p))]], tokens.shape[1:])

    return check
