"""Runs on the tiny scenario: learning, resume, exchanged bytes, dropped satellites, faults."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from research.fed.aggregate import state_bytes
from research.fed.clients import exchanged_state, make_clients
from research.fed.config import FedConfigError, parse_config
from research.fed.runner import run
from tests.fed.conftest import tiny_raw


def _cfg(tmp_path, **kw):
    return parse_config(tiny_raw(out_dir=str(tmp_path), **kw))


def test_two_rounds_improve_over_round_zero(tiny_setup, tmp_path):
    res = run(_cfg(tmp_path), setup=tiny_setup)
    assert len(res.rows) == 2
    assert res.rows[-1]["accuracy"] > res.initial_accuracy
    assert (tmp_path / "ledger.csv").is_file() and (tmp_path / "round_0002.pt").is_file()
    r = res.rows[0]
    parts = sum(r[k] for k in ("onboard_compute_s", "ground_compute_s", "queue_s", "transmit_s",
                               "propagation_s", "return_s"))
    assert parts == pytest.approx(r["duration_s"], abs=1e-6)
    assert r["bytes_downlink"] > 0 and r["bytes_uplink"] > 0


def test_resume_equals_uninterrupted(tiny_setup, tmp_path):
    cfg = _cfg(tmp_path / "a")
    first = run(cfg, setup=tiny_setup, max_rounds=1)  # "killed" after round 1
    assert [r["round"] for r in first.rows] == [1]  # it really stopped early
    assert not (tmp_path / "a" / "round_0002.pt").exists()
    stamp = (tmp_path / "a" / "round_0001.pt").stat().st_mtime_ns
    resumed = run(cfg, setup=tiny_setup)
    assert (tmp_path / "a" / "round_0002.pt").is_file()
    assert (tmp_path / "a" / "round_0001.pt").stat().st_mtime_ns == stamp  # round 1 not rerun
    whole = run(cfg.replace(out_dir=str(tmp_path / "b")), setup=tiny_setup)
    assert resumed.rows == whole.rows
    for k in whole.head:
        assert torch.equal(resumed.head[k], whole.head[k])


def test_server_momentum_changes_the_head_and_resumes_exactly(tiny_setup, tmp_path):
    """FedAvgM's velocity is run state: a run killed after round 1 resumes to the uninterrupted
    run's head, and the head differs from plain FedAvg's."""
    raw = tiny_raw(out_dir=str(tmp_path / "a"))
    raw["train"] = {**raw["train"], "server_lr": 1.5, "server_momentum": 0.9}
    cfg = parse_config(raw)
    first = run(cfg, setup=tiny_setup, max_rounds=1)
    assert [r["round"] for r in first.rows] == [1]
    saved = torch.load(tmp_path / "a" / "round_0001.pt", weights_only=True)
    assert saved["state"]["server_velocity"]  # the velocity is checkpointed
    resumed = run(cfg, setup=tiny_setup)
    whole = run(cfg.replace(out_dir=str(tmp_path / "b")), setup=tiny_setup)
    assert resumed.rows == whole.rows
    plain = run(_cfg(tmp_path / "c"), setup=tiny_setup)
    for k in whole.head:
        assert torch.equal(resumed.head[k], whole.head[k])
    assert any(not torch.equal(whole.head[k], plain.head[k]) for k in whole.head)


def test_a_moving_average_is_what_a_run_reports_and_resumes_exactly(tiny_setup, tmp_path):
    """``train.ema_decay``: each round's accuracy and the returned head are the average of the
    rounds' heads; training goes on from the last head; the average is checkpointed, so a run
    killed after round 1 resumes to the uninterrupted run's numbers."""
    from research.fed.aggregate import ema_step
    from research.fed.clients import accuracy

    raw = tiny_raw(out_dir=str(tmp_path / "a"))
    raw["train"] = {**raw["train"], "ema_decay": 0.5}
    cfg = parse_config(raw)
    first = run(cfg, setup=tiny_setup, max_rounds=1)
    assert [r["round"] for r in first.rows] == [1]
    saved = torch.load(tmp_path / "a" / "round_0001.pt", weights_only=True)
    assert saved["state"]["head_average"]  # the average is checkpointed
    resumed = run(cfg, setup=tiny_setup)
    whole = run(cfg.replace(out_dir=str(tmp_path / "b")), setup=tiny_setup)
    assert resumed.rows == whole.rows
    for k in whole.head:
        assert torch.equal(resumed.head[k], whole.head[k])
    # the plain run's heads are the rounds' heads (same training): the average is built from them
    plain = [run(_cfg(tmp_path / "c"), setup=tiny_setup, max_rounds=r).head for r in (1, 2)]
    expected = ema_step(ema_step({}, plain[0], 0.5), plain[1], 0.5)
    for k in expected:
        assert torch.allclose(whole.head[k], expected[k])
    data = tiny_setup.data
    assert whole.rows[-1]["accuracy"] == accuracy(tiny_setup.template, expected, data.test_x,
                                                  data.test_y)


def test_a_checkpoint_cut_short_falls_back_to_the_round_before(tiny_setup, tmp_path):
    """A round file cut short (killed during a copy, a bad disk) is named in a warning and the
    run resumes from the round before it, to the same result as an uninterrupted run."""
    cfg = _cfg(tmp_path / "a")
    run(cfg, setup=tiny_setup, max_rounds=2)
    last = tmp_path / "a" / "round_0002.pt"
    last.write_bytes(last.read_bytes()[:100])
    with pytest.warns(UserWarning, match="cannot read .*round_0002.pt.*round before it"):
        resumed = run(cfg, setup=tiny_setup)
    whole = run(cfg.replace(out_dir=str(tmp_path / "b")), setup=tiny_setup)
    assert resumed.rows == whole.rows


def test_atomic_save_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    import os

    from research.atomic import atomic_save

    path = tmp_path / "round_0001.pt"
    atomic_save({"round": 1}, path)

    def killed(*_args):
        raise OSError("killed during the write")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(OSError, match="killed"):
        atomic_save({"round": 2}, path)
    assert torch.load(path, weights_only=True) == {"round": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["round_0001.pt"]  # no temporary left


def test_only_the_head_is_exchanged_and_its_bytes_feed_the_ledger(tiny_setup, tmp_path):
    state = exchanged_state(tiny_setup.template)
    assert sorted({k.split(".")[0] for k in state}) == ["fc_norm", "head"]
    assert tiny_setup.costs.update_bytes == state_bytes(state)
    res = run(_cfg(tmp_path, scheme="onboard", topology="star", train={"rounds": 1}),
              setup=tiny_setup)
    row = res.rows[0]  # round 1: no broadcast (preloaded), one upload per participant
    assert row["bytes_model_exchange"] == row["participants"] * state_bytes(state)
    assert row["bytes_downlink"] == row["bytes_model_exchange"]


def test_satellite_without_data_warns_and_is_dropped(tiny_setup, tmp_path):
    plan = tiny_setup.plan
    labels = tiny_setup.data.train_y[: len(plan.satellites) - 1]
    with pytest.warns(UserWarning, match="hold no training data"):
        clients = make_clients(plan.satellites, [plan.plane_of(s) for s in plan.satellites],
                               labels, parse_config(tiny_raw()).data)
    setup = dataclasses.replace(tiny_setup, clients=clients)
    res = run(_cfg(tmp_path, train={"rounds": 1}), setup=setup)
    empty = next(c.sat for c in clients if c.n == 0)
    assert f"{empty}:no_data" in res.rows[0]["dropped_ids"]
    assert res.rows[0]["participants"] + res.rows[0]["dropped"] == len(plan.satellites)


def test_station_outage_everywhere_stops_with_a_warning(tiny_setup, tmp_path):
    faults = [{"kind": "station_outage", "nodes": [g], "start_s": 0, "end_s": 1e9}
              for g in tiny_setup.plan.stations]
    with pytest.warns(UserWarning, match="stopping after round 0"):
        res = run(_cfg(tmp_path, scheme="onboard", topology="star", faults=faults),
                  setup=tiny_setup)
    assert res.rows == []


def test_bad_config_key_names_the_key():
    with pytest.raises(FedConfigError, match="'lrr'.*did you mean 'lr'"):
        parse_config(tiny_raw(train={"lrr": 0.1}))
    with pytest.raises(FedConfigError, match="scheme"):
        parse_config(tiny_raw(scheme="everywhere"))


@pytest.mark.parametrize("section, key, value, expected", [
    ("train", "rounds", "ten", "int"),
    ("comm", "maxflow", "flase", "bool"),  # a string would count as true
    ("train", "lr", True, "float"),
])
def test_config_values_of_the_wrong_type_are_named(section, key, value, expected):
    with pytest.raises(FedConfigError, match=rf"{section}\.{key}: {value!r} is not of type .*{expected}"):
        parse_config(tiny_raw(**{section: {key: value}}))


def test_deadline_drops_stragglers_once(tiny_setup, tmp_path):
    cfg = _cfg(tmp_path, scheme="onboard", topology="star", train={"rounds": 1},
               comm={"round_deadline_s": 1800.0})
    row = run(cfg, setup=tiny_setup).rows[0]
    assert "deadline" in row["dropped_ids"]
    # stragglers are only known at the deadline: the round cannot end before it
    assert row["duration_s"] == pytest.approx(1800.0 + cfg.comm.backhaul_s)
    # each dropped update is discarded: only participants' uploads were booked as exchanged
    assert row["bytes_model_exchange"] >= row["participants"] * tiny_setup.costs.update_bytes


def test_ring_round_ends_at_the_deadline_not_when_stragglers_finish(tiny_setup, tmp_path):
    """Features that would reach a satellite after the deadline are not waited for: its plane's
    ring starts without it, and the round ends at the deadline (the ground cannot know earlier
    that nobody else comes), not when the straggler's transfers end (420 s here)."""
    common = {"train": {"rounds": 1}, "comm": {"reuse_features": False}}
    free = run(_cfg(tmp_path / "a", **common), setup=tiny_setup).rows[0]
    cut = run(_cfg(tmp_path / "b", train={"rounds": 1},
                   comm={"reuse_features": False, "round_deadline_s": 200.0}),
              setup=tiny_setup).rows[0]
    assert free["duration_s"] > 300.0 and "deadline" not in free["dropped_ids"]
    assert "deadline" in cut["dropped_ids"] and cut["participants"] > 0
    assert cut["duration_s"] == pytest.approx(200.0)
    # the stragglers' feature uplinks past the deadline were cancelled, not booked
    assert cut["bytes_uplink"] < free["bytes_uplink"]


def test_runs_from_before_new_options_still_resume():
    """Options added later leave the fingerprint of runs that do not use them unchanged, so
    their checkpoints still resume."""
    import hashlib
    import json

    from research.fed.runner import _fingerprint

    text = _fingerprint(parse_config(tiny_raw()))
    # pinned at 8cdea7e (before this round's options): a change here strands old checkpoints
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == "291e35345f54bf93"
    plain = json.loads(text)
    assert "capture_window_s" not in plain["data"] and "gossip_tol" not in plain["comm"]
    track = json.loads(_fingerprint(parse_config(tiny_raw(
        data={"partition": "ground_track"}, topology="gossip"))))
    assert track["data"]["capture_window_s"] == 5400.0 and track["comm"]["gossip_tol"] == 1e-3
