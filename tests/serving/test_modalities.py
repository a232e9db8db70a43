"""Modalities: real conversions of the RGB scene, embedders that start from the RGB kernel and
train by feature distillation, weights files, and a catalog that serves them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from research.serving.modalities import (
    embedder_init,
    get_modality,
    list_modalities,
    load_embedder_weights,
    save_embedder_weights,
    train_embedder,
)
from research.serving.runtime import InProcessRuntime
from research.serving.schema import Request
from research.serving.tasks import build_catalog
from tests.serving.conftest import MEAN, STD


def test_modalities_are_the_scene_as_each_sensor_samples_it(images):
    assert list_modalities(measured_only=True) == ["pan", "rgb", "rgb20m"]
    assert "ms13" in list_modalities() and not get_modality("ms13").measured
    pan = get_modality("pan").from_rgb(images)
    luma = (0.299 * images[:, 0].float() + 0.587 * images[:, 1].float()
            + 0.114 * images[:, 2].float()).round()
    assert pan.shape == (6, 1, 64, 64) and pan.dtype == torch.uint8
    assert torch.equal(pan[:, 0].float(), luma)
    low = get_modality("rgb20m").from_rgb(images)
    assert low.shape == (6, 3, 32, 32)
    assert torch.equal(low.float(), F.avg_pool2d(images.float(), 2).round())
    assert [get_modality(m).raw_bytes for m in ("rgb", "pan", "rgb20m", "ms13")] == \
        [12_288, 4_096, 3_072, 106_496]


def test_initial_embedders_equal_the_rgb_one_on_rgb_like_tiles(vit):
    """A grey tile seen as RGB (R = G = B) and a tile constant on 2 x 2 blocks seen at 20 m give
    the RGB embedder's tokens exactly: training starts from the RGB features."""
    g = torch.Generator().manual_seed(1)
    grey = torch.randn(2, 1, 64, 64, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(embedder_init(vit, "pan")(grey),
                                   vit.patch_embed(grey.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-4)
        coarse = torch.randn(2, 3, 32, 32, generator=g)
        fine = coarse.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        torch.testing.assert_close(embedder_init(vit, "rgb20m")(coarse), vit.patch_embed(fine),
                                   rtol=1e-4, atol=1e-4)
    assert embedder_init(vit, "rgb") is vit.patch_embed


def test_training_lowers_the_distillation_loss_and_weights_round_trip(vit, images, tmp_path):
    pe, losses = train_embedder(vit, "pan", images, MEAN, STD, [0.38], [0.15], steps=12,
                                batch_size=6, lr=3e-3, progress=False)
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert not any(p.requires_grad for p in vit.parameters())
    path = tmp_path / "emb.pt"
    save_embedder_weights(path, {"pan": pe}, {"pan": ([0.38], [0.15])}, {"steps": 12})
    loaded, stats, meta = load_embedder_weights(path, vit)
    assert stats == {"pan": ([0.38], [0.15])} and meta == {"steps": 12}
    assert torch.equal(loaded["pan"].proj.weight, pe.proj.weight)
    torch.save({"x": 1}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not an embedder weights file"):
        load_embedder_weights(tmp_path / "bad.pt", vit)
    with pytest.raises(FileNotFoundError, match="train_modality_embedders"):
        load_embedder_weights(tmp_path / "missing.pt", vit)


def test_catalog_serves_a_trained_modality_and_refuses_one_it_lacks(vit, images):
    pe = embedder_init(vit, "rgb20m")
    cat = build_catalog(vit, MEAN, STD, cuts=(1,), embedders={"rgb20m": pe},
                        embedder_stats={"rgb20m": (MEAN, STD)})
    rt = InProcessRuntime(cat)
    low = get_modality("rgb20m").from_rgb(images)
    r = rt.handle(Request("a", ("landcover",), "s", payload=low, modality="rgb20m"))
    assert r.ok and r.outputs["landcover"].shape == (6, 10)
    assert r.served_by[0].startswith("embed_rgb20m@")
    r = rt.handle(Request("b", ("landcover",), "s", payload=get_modality("pan").from_rgb(images),
                          modality="pan"))
    assert not r.ok and "no embedder in this deployment" in r.error
    r = rt.handle(Request("c", ("landcover",), "s", payload=images, modality="rgb20m"))
    assert not r.ok and "32x32" in r.error


def test_each_modality_is_evaluated_on_its_own_tiles(vit):
    """Served (through the runtime) and float accuracy agree per modality without a codec, and
    the modalities' rows differ: no answer of one modality is reused for another."""
    from research.data.embedded import load_embedded
    from research.serving.experiment import evaluate_tasks

    data = load_embedded()
    cat = build_catalog(vit, MEAN, STD, cuts=(1,), embedders={"pan": embedder_init(vit, "pan")},
                        embedder_stats={"pan": ([0.38], [0.15])})
    train_idx, test_idx = torch.arange(0, 1000, 20), torch.arange(5, 1000, 25)
    ctx = {"data": data, "train_idx": train_idx, "test_idx": test_idx,
           "train_features": cat.features(data.images[train_idx])}
    out = evaluate_tasks(cat, ctx, 40, [1], ["rgb", "pan"], ["jpeg"], 90)
    rows = out["modalities"]
    for m in ("rgb", "pan"):
        assert rows[m]["served"] == rows[m]["float"], m
        assert 0 < rows[m]["jpeg_bytes_per_tile"] < get_modality(m).raw_bytes
    assert rows["rgb"]["served"] != rows["pan"]["served"]


def test_landcover_accuracy_is_the_unsplit_models_on_rgb(vit, images):
    from research.data.transforms import normalize
    from research.serving.modalities import landcover_accuracy

    labels = torch.arange(6) % 10
    with torch.no_grad():
        want = float((vit(normalize(images, MEAN, STD)).argmax(1) == labels).float().mean())
    assert landcover_accuracy(vit, "rgb", vit.patch_embed, images, labels, MEAN, STD,
                              batch_size=4) == pytest.approx(want)
