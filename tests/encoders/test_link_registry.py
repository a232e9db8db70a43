"""Registry-wide checks: every link is listed, builds by name, and honours the forward contract."""

from __future__ import annotations

import pytest
import torch

from encoders import (
    CODEC_IDS,
    EntropyLink,
    IdentityLink,
    LinkModule,
    build_link,
    estimated_bits,
    list_links,
    register_link,
)

EXPECTED = ["factorized", "float16", "hyperprior", "identity", "int4", "int8"]


def test_list_links_names_every_link():
    assert set(EXPECTED) <= set(list_links())
    assert list_links() == sorted(list_links())


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown link module 'jpeg'") as err:
        build_link("jpeg")
    for name in EXPECTED:
        assert name in str(err.value)


def test_duplicate_name_or_codec_id_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        register_link("identity")(IdentityLink)
    with pytest.raises(ValueError, match="already used by 'identity'"):
        register_link("another-identity", codec_id=CODEC_IDS["identity"])(IdentityLink)
    with pytest.raises(ValueError, match="needs a codec id"):
        register_link("no-id-anywhere")


def test_codec_ids_are_unique(make_link):
    ids = {make_link(name).codec_id for name in EXPECTED}
    assert len(ids) == len(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_forward_contract(make_link, tokens, name):
    link = make_link(name)
    assert isinstance(link, LinkModule)
    for mode in (link.train, link.eval):
        mode()
        out = link(tokens)
        assert out["y_hat"].shape == tokens.shape
        assert torch.isfinite(out["y_hat"]).all()
        assert isinstance(out["likelihoods"], dict)
        bits = estimated_bits(out["likelihoods"])
        if isinstance(link, EntropyLink):
            assert bits.shape == (tokens.shape[0],) and (bits > 0).all()
        else:
            assert out["likelihoods"] == {} and bits.numel() == 0
    assert link.aux_loss().shape == ()


@pytest.mark.parametrize("name", ["factorized", "hyperprior"])
def test_codec_rejects_wrong_token_shape(make_link, tokens, name):
    link = make_link(name)
    with pytest.raises(ValueError, match=r"expected tokens of shape \[B, 16, 32\]"):
        link(tokens[:, :8])


def test_merge_needs_a_square_grid():
    with pytest.raises(ValueError, match="square grid"):
        build_link("factorized", dim=8, num_tokens=15, merge_tokens=2)
