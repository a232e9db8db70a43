"""The spike-link rate sweep trains on cached tokens, measures real payloads and resumes."""

from __future__ import annotations

import json

import pytest
import torch

from encoders import HEADER_SIZE
from research.eval import spike_link_rate as slr
from research.tasks.loading import load_classifier


@pytest.fixture
def ground_and_cache(tiny_checkpoint):
    model = load_classifier(tiny_checkpoint, split_index=1, head_placement="ground").model
    gen = torch.Generator().manual_seed(0)
    cache = {}
    with torch.no_grad():
        for split, n in (("train", 64), ("val", 16), ("test", 32)):
            tokens = model.satellite_part(torch.randn(n, 3, 64, 64, generator=gen))
            noisy = tokens + 0.1 * torch.randn(tokens.shape, generator=gen)
            cache[split] = {"part": noisy.half(),
                            "reference": tokens.half(),
                            "teacher_logits": model.head(model.ground_part(tokens)),
                            "labels": torch.randint(10, (n,), generator=gen)}
    return model, cache


def test_rows_are_real_payloads_and_a_rerun_resumes(ground_and_cache, tmp_path, monkeypatch):
    ground, cache = ground_and_cache
    settings = [slr.LinkSetting(8, 1, 1e-3, hidden=16),
                slr.LinkSetting(16, 2, 1e-3, hidden=16, encoder_hidden=12)]
    rows = slr.sweep(cache, ground, settings, tmp_path, epochs=1, budget_bytes=60)
    assert [r["setting"] for r in rows] == [s.name for s in settings]
    assert settings[1].name.endswith("_h12") and rows[1]["encoder_hidden"] == 12
    for r in rows:
        assert r["bytes_per_inference"] > HEADER_SIZE and 0 <= r["test_acc"] <= 1
    assert rows[1]["bits_per_token_raw"] == 16 / 4
    saved = json.loads((tmp_path / "spike_link_rate.json").read_text())
    assert saved["budget_bytes"] == 60 and len(saved["rows"]) == 2
    for suffix in ("png", "pdf"):
        assert (tmp_path / f"spike_link_rate.{suffix}").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished setting was trained again")

    monkeypatch.setattr(slr, "train_link", no_training)
    again = slr.sweep(cache, ground, settings, tmp_path, epochs=1, budget_bytes=60)
    assert [r["bytes_per_inference"] for r in again] == [r["bytes_per_inference"] for r in rows]
    with pytest.raises(ValueError, match="after 1 epoch"):
        slr.sweep(cache, ground, settings, tmp_path, epochs=2)


def test_the_rate_weight_buys_bytes(ground_and_cache):
    ground, cache = ground_and_cache
    ground.requires_grad_(False).eval()
    sizes = []
    for lmbda in (0.0, 0.2):
        link = slr.train_link(cache, ground, slr.LinkSetting(16, 1, lmbda, hidden=16), epochs=6,
                              lr=1e-2, batch=16)
        sizes.append(slr.measure(link, ground, cache["test"])[1])
    assert sizes[1] < 0.8 * sizes[0]


def test_a_cache_made_for_other_inputs_is_refused(tmp_path):
    path = tmp_path / "cut_tokens.pt"
    made_by = {"part": "a.ckpt", "reference": "r.ckpt", "cut": 3, "root": None,
               "split_file": None, "limit": None}
    torch.save({"made_by": made_by, "train": {}}, path)
    same = slr.cache_cut_tokens("a.ckpt", "r.ckpt", 3, path, root=None, split_file=None)
    assert same["train"] == {}
    with pytest.raises(ValueError, match="cut_tokens.pt' was made by .* delete it"):
        slr.cache_cut_tokens("b.ckpt", "r.ckpt", 3, path, root=None, split_file=None)
