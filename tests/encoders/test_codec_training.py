"""Learned codecs train: gradients flow, the rate falls, and estimated bits match real bytes."""

from __future__ import annotations

import pytest
import torch

from encoders import (
    HEADER_SIZE,
    estimated_bits,
    payload_bits,
    rate_loss,
    reconstruction_step,
    split_parameters,
)

CODECS = ["factorized", "hyperprior"]


def _optimizers(link, lr=3e-3):
    main, aux = split_parameters(link)
    return torch.optim.Adam(main, lr=lr), torch.optim.Adam(aux, lr=1e-1)


def test_split_parameters_separates_quantiles(make_link):
    link = make_link("hyperprior")
    main, aux = split_parameters(link)
    assert aux == [link.entropy_bottleneck.quantiles]
    assert len(main) + len(aux) == len(list(link.parameters()))
    assert split_parameters(make_link("int8")) == ([], [])


@pytest.mark.parametrize("name", CODECS)
def test_gradients_reach_the_analysis_transform(make_link, tokens, name):
    link = make_link(name).train()
    x = tokens.clone().requires_grad_(True)
    out = link(x)
    loss = rate_loss(out["likelihoods"], x[0].numel()) + (out["y_hat"] - x).pow(2).mean()
    loss.backward()
    main, _ = split_parameters(link)
    for param in main:
        assert param.grad is not None and torch.isfinite(param.grad).all()
    assert link.g_a[0].weight.grad.abs().sum() > 0
    assert x.grad.abs().sum() > 0  # and on into the satellite part
    link.aux_loss().backward()
    assert link.entropy_bottleneck.quantiles.grad.abs().sum() > 0


@pytest.mark.parametrize("name", CODECS)
def test_real_bytes_match_estimated_bits(make_link, tokens, name):
    link = make_link(name)
    opt, aux_opt = _optimizers(link)
    for step in range(5):
        reconstruction_step(link, tokens + 0.01 * step, opt, aux_opt, lmbda=0.1)
    link.eval().update(force=True)
    with torch.no_grad():
        est = estimated_bits(link(tokens)["likelihoods"])
    body = payload_bits(link.compress(tokens)) - 8 * HEADER_SIZE
    # the rANS coder flushes an 8-byte state and writes 4-byte words: at most ~12 bytes over
    assert (body - est.double()).abs().max() <= 0.05 * est.max() + 8 * 12


@pytest.mark.parametrize("name", CODECS)
def test_training_lowers_the_rate(make_link, toy_tokens, name):
    link = make_link(name)
    opt, aux_opt = _optimizers(link, lr=1e-2)
    held_out = toy_tokens(8, seed=999)
    lmbda = 0.1  # a low-rate operating point: both rate and distortion fall from the start

    def real_bits() -> float:
        link.eval().update(force=True)
        return float(payload_bits(link.compress(held_out)).mean())

    before = real_bits()
    first = reconstruction_step(link, toy_tokens(16, seed=0), opt, aux_opt, lmbda=lmbda)
    for step in range(1, 50):
        last = reconstruction_step(link, toy_tokens(16, seed=step), opt, aux_opt, lmbda=lmbda)
    assert last["bits"] < 0.6 * first["bits"]
    assert last["mse"] < 0.5 * first["mse"]
    assert real_bits() < 0.7 * before
