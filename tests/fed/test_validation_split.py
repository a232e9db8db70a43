"""A validation split for federated runs: held out of the satellites' data, reported each round,
and what a tuning grid chooses by, so no setting is chosen on the test images."""

from __future__ import annotations

import pytest
import torch

from research.fed.config import FedConfigError, parse_config
from research.fed.privacy_tuning import chosen_on_validation
from research.fed.runner import prepare, run
from tests.fed.conftest import tiny_raw


def _ids(x: torch.Tensor) -> set[bytes]:
    return {row.numpy().tobytes() for row in x}


@pytest.fixture(scope="module")
def val_setup(tiny_plan):
    return prepare(parse_config(tiny_raw(data={"max_images": 300, "alpha": 0.5, "val_fraction": 0.2})),
                   plan=tiny_plan)


def test_validation_images_come_out_of_training_and_the_test_set_is_unchanged(val_setup, tiny_setup):
    plain, held = tiny_setup.data, val_setup.data
    assert plain.val_x is None
    assert torch.equal(held.test_y, plain.test_y)  # the same test images in the same order
    assert len(held.val_y) + len(held.train_y) == len(plain.train_y)
    assert len(held.val_y) == pytest.approx(0.2 * len(plain.train_y), abs=10)
    assert set(held.val_y.tolist()) == set(plain.train_y.tolist())  # every class, stratified
    train, val, test = _ids(held.train_x), _ids(held.val_x), _ids(held.test_x)
    assert not train & val and not val & test
    assert sum(c.n for c in val_setup.clients) == len(held.train_y)  # satellites never see them


def test_rounds_report_validation_accuracy_only_when_there_is_a_validation_set(val_setup, tiny_setup, tmp_path):
    with_val = run(parse_config(tiny_raw(out_dir=str(tmp_path / "v"),
                                         data={"max_images": 300, "alpha": 0.5, "val_fraction": 0.2})),
                   setup=val_setup)
    assert all(0 <= r["val_accuracy"] <= 1 for r in with_val.rows)
    plain = run(parse_config(tiny_raw(out_dir=str(tmp_path / "p"))), setup=tiny_setup)
    assert all("val_accuracy" not in r for r in plain.rows)


def test_val_fraction_out_of_range_is_named():
    with pytest.raises(FedConfigError, match="data.val_fraction"):
        parse_config(tiny_raw(data={"val_fraction": 1.0}))


def test_a_grid_chooses_each_arm_on_validation_not_on_test():
    """The setting best on the test images is not the one reported: each arm's choice is the
    best on validation, and the DP gap compares the two arms' choices."""
    def row(lr, np_val, np_test, p_val, p_test):
        return {"server_lr": lr, "server_momentum": 0.0, "rounds": 30,
                "non_private_val_pct": np_val, "non_private_pct": np_test,
                "satellite_clip_only_val_pct": 50.0, "satellite_clip_only_pct": 50.0,
                "satellite_private_val_pct": p_val, "satellite_private_pct": p_test}

    rows = [row(1.0, 80.0, 90.0, 70.0, 75.0), row(2.0, 85.0, 86.0, 72.0, 71.0)]
    chosen = chosen_on_validation(rows, ["satellite"])
    assert chosen["non_private"]["server_lr"] == 2.0 and chosen["non_private"]["test_pct"] == 86.0
    assert chosen["satellite_private"]["server_lr"] == 2.0
    assert chosen["satellite_private"]["gap_pts"] == pytest.approx(86.0 - 71.0)
    rows[0]["non_private_val_pct"] = None
    assert chosen_on_validation(rows[:1], ["satellite"]) is None


def test_the_grid_figure_rings_the_choices_made_on_validation(tmp_path):
    from research.fed.privacy_tuning import plot_server_opt

    rows = [{"server_lr": lr, "server_momentum": 0.0, "rounds": 30, "epsilon": 8.0, "seed": 0,
             "non_private_pct": 86.0 + lr, "non_private_val_pct": 85.0 + lr,
             "satellite_clip_only_pct": 84.0, "satellite_clip_only_val_pct": 84.0 - lr,
             "satellite_private_pct": 82.0, "satellite_private_val_pct": 81.0 + lr} for lr in (1.0, 2.0)]
    paths = plot_server_opt(rows, tmp_path, ["satellite"])
    assert all(p.stat().st_size > 1000 for p in paths)
