"""A trained spike link gets its prior afterwards: same spikes and predictions, fewer bytes."""

from __future__ import annotations

import pytest
import torch

from research.data.eurosat import EuroSATDataModule
from research.tasks.loading import load_classifier
from research.tasks.spike_prior import fit_spike_prior
from snn.link import FLAG_RANS


def test_fitted_prior_keeps_the_spikes_and_codes_them_shorter(tiny_spiking_checkpoint, tmp_path):
    train, _ = EuroSATDataModule(root=None).subset("train").tensors
    test, _ = EuroSATDataModule(root=None).subset("test").tensors
    out = tmp_path / "with_prior.ckpt"
    report = fit_spike_prior(tiny_spiking_checkpoint, out, train[:64], batch_size=16,
                             progress=False)
    assert report["images"] == 64 and 0 < report["firing_rate"] < 1
    before = load_classifier(tiny_spiking_checkpoint, head_placement="ground")
    after = load_classifier(out, head_placement="ground")
    assert after.hparams["codec_options"] == {"prior": True}
    assert float(after.model.link.prior_seen) == 64  # counted on the training images only
    with torch.no_grad():
        tokens = before.model.cut_tokens(before.normalize(test[:16]))
        old, new = before.model.link.compress(tokens), after.model.link.compress(tokens)
        decoded = after.model.link.decompress(new, tokens.shape[1:])
        assert torch.equal(decoded, before.model.link.decompress(old, tokens.shape[1:]))
    assert any(p[4] & FLAG_RANS for p in new)
    assert sum(map(len, new)) < sum(map(len, old))


def test_only_a_spike_link_gets_a_prior(tiny_checkpoint, tmp_path):
    train, _ = EuroSATDataModule(root=None).subset("train").tensors
    with pytest.raises(ValueError, match="'spike' link"):
        fit_spike_prior(tiny_checkpoint, tmp_path / "x.ckpt", train[:4], progress=False)


def test_a_prior_is_re_counted_in_place(tiny_spiking_checkpoint, tmp_path):
    train, _ = EuroSATDataModule(root=None).subset("train").tensors
    path = tmp_path / "prior.ckpt"
    fit_spike_prior(tiny_spiking_checkpoint, path, train[:32], batch_size=16, progress=False)
    again = fit_spike_prior(path, path, train[:48], batch_size=16, progress=False)
    assert again["images"] == 48
    assert float(load_classifier(path).model.link.prior_seen) == 48
