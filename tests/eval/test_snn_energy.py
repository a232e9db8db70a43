"""The spiking-energy experiment (research.eval.snn_energy) in quick mode writes its four files."""

from __future__ import annotations

import csv
import json

import pytest

from devices import list_devices
from research.eval.snn_energy import SnnEnergyConfig, snn_energy


def test_snn_energy_quick(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    config = SnnEnergyConfig(quick=True, backbone="satvit_tiny", steps=[1, 2], hidden=[32],
                             linear_steps=[1], limit_batches=0.3, batch_size=64, out=tmp_path)
    result = snn_energy(config)
    assert "under cmos45nm the claim" in capsys.readouterr().out
    assert (tmp_path / "snn_energy.png").stat().st_size > 1000
    assert (tmp_path / "snn_energy.pdf").is_file()
    rows = list(csv.DictReader((tmp_path / "snn_energy.csv").open()))
    variants = {r["variant"] for r in rows}
    assert variants == {"ann_linear", "ann_mlp", "snn_T1", "snn_T2", "snn_if_T1", "snn_if_T2",
                        "snn_if_linear_T1", "convert_T1", "convert_T2"}
    assert {r["variant"] for r in result["records"]} == variants
    assert {r["profile"] for r in rows} == set(list_devices())  # every registered device
    assert all(float(r["energy_j"]) > float(r["head_energy_j"]) > 0 for r in rows)
    data = json.loads((tmp_path / "snn_energy.json").read_text())
    assert set(data["claim"]["by_ref"]) == {"ann_linear", "ann_mlp"}
    assert data["config"]["steps"] == [1, 2] and data["config"]["epochs"] == 1
    snn = next(r for r in data["records"] if r["variant"] == "snn_T2")
    assert "head.1.lifs.0" in snn["firing_rates"]
    spike_driven = next(r for r in data["records"] if r["variant"] == "snn_if_T2")
    assert "head.1.encoder" in spike_driven["firing_rates"]  # the encoder neurons are counted
    cmos = {r["variant"]: r for r in rows if r["profile"] == "cmos45nm"}
    # direct input: the first layer is dense MACs; IF input makes it accumulates
    assert float(cmos["snn_if_T2"]["synops"]) > float(cmos["snn_T2"]["synops"])
    assert float(cmos["snn_if_T2"]["macs"]) < float(cmos["snn_T2"]["macs"])
    journal = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert {r["variant"] for r in journal} == variants
    # a rerun into the same out measures nothing again
    snn_energy(config)
    again = capsys.readouterr().out
    assert "head J (cmos45nm)" not in again and "under cmos45nm the claim" in again
