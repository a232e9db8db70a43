"""Federated config values out of their range are errors naming the key."""

from __future__ import annotations

import pytest

from research.fed.config import FedConfigError, parse_config
from tests.fed.conftest import tiny_raw


@pytest.mark.parametrize("section, key, value, match", [
    ("train", "lr", float("inf"), "train.lr must be a finite number > 0"),
    ("data", "alpha", 0.0, "data.alpha .* must be a finite number > 0"),
    ("data", "alpha", float("inf"), "data.alpha"),
    ("data", "partition_seed", -1, "data.partition_seed must be >= 0"),
    ("comm", "backhaul_s", -0.1, "comm.backhaul_s must be a finite number"),
    ("train", "server_momentum", 1.0, "train.server_momentum in \\[0, 1\\), got 1.0, 1.0"),
    ("train", "server_lr", 0.0, "train.server_lr must be a finite number > 0"),
    ("train", "ema_decay", 1.0, "train.ema_decay must be in \\[0, 1\\), got 1.0"),
])
def test_out_of_range_values_are_named(section, key, value, match):
    raw = tiny_raw()
    raw[section] = {**raw.get(section, {}), key: value}
    with pytest.raises(FedConfigError, match=match):
        parse_config(raw)


def test_the_centralised_engine_refuses_a_server_optimiser():
    raw = tiny_raw(scheme="centralised", topology="star")
    raw["train"] = {**raw["train"], "server_momentum": 0.9}
    with pytest.raises(FedConfigError, match="train.server_lr and train.server_momentum act on "
                       "federated averages; scheme 'centralised'"):
        parse_config(raw)
    raw["train"]["server_momentum"] = 0.0
    parse_config(raw)  # the plain values are fine


def test_gossip_refuses_a_server_optimiser():
    raw = tiny_raw(topology="gossip")
    raw["train"] = {**raw["train"], "server_lr": 2.0}
    with pytest.raises(FedConfigError, match="need one released average a round"):
        parse_config(raw)


def test_engines_without_one_released_head_refuse_a_moving_average():
    raw = tiny_raw(topology="gossip")
    raw["train"] = {**raw["train"], "ema_decay": 0.5}
    with pytest.raises(FedConfigError, match="ema_decay needs one released head a round"):
        parse_config(raw)
    raw = tiny_raw(scheme="centralised", topology="star")
    raw["train"] = {**raw["train"], "ema_decay": 0.5}
    with pytest.raises(FedConfigError, match="scheme 'centralised' runs its own engine"):
        parse_config(raw)
