"""The ground-centralised baseline: raw images down, the ground trains as they arrive."""

from __future__ import annotations

import pytest

from research.fed.config import FedConfigError, parse_config
from research.fed.runner import run
from tests.fed.conftest import tiny_raw


def _cfg(tmp_path, **overrides):
    train = {**tiny_raw()["train"], "rounds": 5}
    return parse_config(tiny_raw(scheme="centralised", topology="star", out_dir=str(tmp_path),
                                 train=train, **overrides))


def test_the_ground_trains_on_the_images_as_they_arrive(tiny_setup, tmp_path):
    res = run(_cfg(tmp_path), setup=tiny_setup, resume=False)
    rows = res.rows
    assert [r["round"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[-1]["accuracy"] > res.initial_accuracy
    # plane 2 never sees a station in this plan: its satellites cannot send (known, every row)
    assert all(r["dropped"] == 10 and "sat-P02" in r["dropped_ids"] for r in rows)
    held = [r["participants"] for r in rows]
    assert held == sorted(held) and held[-1] == 20  # the data piles up on the ground
    assert sum(r["satellites_new_data"] for r in rows) == 20
    # every image of the 20 senders crosses a downlink once, at a byte per pixel and band
    images = sum(c.n for c in tiny_setup.clients if not c.sat.startswith("sat-P02"))
    assert sum(r["bytes_downlink"] for r in rows) == images * 64 * 64 * 3
    assert all(r["bytes_uplink"] == 0 and r["bytes_model_exchange"] == 0 for r in rows)
    assert all(r["energy_ground_j"] > 0 and r["energy_onboard_compute_j"] == 0 for r in rows)
    ends = [r["t_end_s"] for r in rows]
    assert ends == sorted(ends) and all(r["aggregation"] == "ground" for r in rows)


def test_it_resumes_to_the_same_ledger(tiny_setup, tmp_path):
    straight = run(_cfg(tmp_path / "a"), setup=tiny_setup, resume=False).rows
    first = run(_cfg(tmp_path / "b"), setup=tiny_setup, resume=False, max_rounds=2).rows
    assert len(first) == 2
    resumed = run(_cfg(tmp_path / "b"), setup=tiny_setup).rows
    assert resumed == straight


def test_what_does_not_apply_is_refused(tiny_setup, tmp_path):
    with pytest.raises(FedConfigError, match="'centralised' cannot use topology 'ring'"):
        parse_config(tiny_raw(scheme="centralised", topology="ring"))
    with pytest.raises(ValueError, match="privacy: the centralised baseline"):
        run(_cfg(tmp_path, privacy={"level": "satellite", "noise_multiplier": 1.0}),
            setup=tiny_setup, resume=False)
    with pytest.raises(ValueError, match="secagg: the centralised baseline"):
        run(_cfg(tmp_path, secagg={"enabled": True}), setup=tiny_setup, resume=False)
