"""What the cut leaks: the inversion attacks and the sweep that scores them."""

from __future__ import annotations

import pytest
import torch

from research.data.eurosat import EuroSATDataModule
from research.eval.leakage import (
    GridInverter,
    LeakageConfig,
    TokenInverter,
    denormalize,
    image_quality,
    invert_patch_embedding,
    leakage_sweep,
    read_leakage,
    write_leakage,
)
from research.eval.schemes import token_link
from research.paths import DEFAULT_CLASSIFIER
from research.tasks.loading import load_classifier


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return EuroSATDataModule(root=None).subset("test").tensors[0][:12]


def test_split0_tokens_give_the_image_back_and_quantisation_hides_some(images):
    # satvit_small embeds a 3x8x8 patch in 192 numbers: square, so invertible (satvit_tiny's 32
    # are not, and its pseudo-inverse only gives the least-norm image)
    clf = load_classifier(DEFAULT_CLASSIFIER, split_index=0)
    tokens = clf.model.satellite_part(clf.normalize(images))
    exact = denormalize(invert_patch_embedding(clf.model, tokens, 64), clf)
    psnr, ssim = image_quality(exact, images)
    assert psnr > 60 and ssim > 0.999
    int4 = token_link("int4", clf.model, clf.hparams["backbone"])
    noisy = int4.decompress(int4.compress(tokens), tokens.shape[1:])
    psnr4, _ = image_quality(denormalize(invert_patch_embedding(clf.model, noisy, 64), clf),
                             images)
    assert psnr4 < psnr - 20
    deeper = load_classifier(DEFAULT_CLASSIFIER, split_index=1)
    with pytest.raises(ValueError, match="linear inversion needs split_index 0, got 1"):
        invert_patch_embedding(deeper.model, tokens, 64)


def test_image_quality_ranks_reconstructions(images):
    same = image_quality(images.float(), images)
    noisy = image_quality((images.float() + 20 * torch.randn(images.shape)).clamp(0, 255), images)
    assert same[1] == pytest.approx(1.0) and same[0] > 90
    assert noisy[0] < 30 and noisy[1] < same[1]


def test_the_token_inverter_learns_a_linear_patch_map():
    torch.manual_seed(0)
    patches = torch.randn(64, 16, 12)
    w = torch.randn(12, 24)
    tokens = patches @ w
    inverter = TokenInverter(24, 12, hidden=64)
    before = torch.nn.functional.mse_loss(inverter(tokens), patches).item()
    inverter.fit(tokens, patches, epochs=30, batch=256)
    after = torch.nn.functional.mse_loss(inverter(tokens), patches).item()
    assert after < 0.2 * before


def test_the_grid_inverter_uses_what_the_neighbours_carry():
    """Each token holds its left neighbour's patch (as attention can spread it): only an
    attacker that looks across the grid can put a patch back where it belongs."""
    torch.manual_seed(0)
    patches = torch.randn(256, 64, 12)
    w = torch.randn(12, 24)
    tokens = torch.roll(patches, shifts=1, dims=1) @ w  # token i carries patch i - 1
    token = TokenInverter(24, 12, hidden=64).fit(tokens, patches, epochs=10, batch=1024)
    grid = GridInverter(24, 12, hidden=64).fit(tokens, patches, epochs=10, batch=1024)
    with torch.no_grad():
        err_token = torch.nn.functional.mse_loss(token(tokens), patches).item()
        err_grid = torch.nn.functional.mse_loss(grid(tokens), patches).item()
    assert err_token > 0.8  # patches are unit-variance noise: a per-token guess is ~ chance
    assert err_grid < 0.5 * err_token
    with pytest.raises(ValueError, match="expects 8x8 = 64 tokens per image, got 63"):
        grid(tokens[:, :63])


def test_an_unknown_attacker_is_named():
    with pytest.raises(ValueError, match="attacker must be one of"):
        leakage_sweep(LeakageConfig(attacker="gan"), progress=False)


def test_leakage_sweep_scores_every_cut_and_link(tiny_checkpoint, tmp_path):
    config = LeakageConfig(root=None, checkpoint=tiny_checkpoint, cuts=(0, 1),
                           links=("identity", "int4"), codecs={}, train_images=40,
                           test_images=10, epochs=1, hidden=32)
    rows, extra = leakage_sweep(config, progress=False)
    assert [(r["link"], r["cut"]) for r in rows] == [
        ("identity", 0), ("int4", 0), ("identity", 1), ("int4", 1)]
    at0 = {r["link"]: r for r in rows if r["cut"] == 0}
    assert at0["identity"]["psnr_linear_db"] > at0["int4"]["psnr_linear_db"]
    assert at0["int4"]["bytes_per_inference"] < at0["identity"]["bytes_per_inference"]
    assert all(0 <= r["accuracy"] <= 1 and r["psnr_learned_db"] > 0 for r in rows)
    paths = write_leakage(rows, extra, tmp_path)
    assert {"csv", "json", "png", "pdf", "npz"} <= set(paths)
    again, extra_again = read_leakage(tmp_path)
    assert [r["psnr_learned_db"] for r in again] == [r["psnr_learned_db"] for r in rows]
    assert set(extra_again["examples"]) == set(extra["examples"])
    assert torch.equal(extra_again["originals"], extra["originals"])
    config.attacker = "grid"
    grid_rows, _ = leakage_sweep(config, progress=False)
    assert all(r["attacker"] == "grid" and r["psnr_learned_db"] > 0 for r in grid_rows)
