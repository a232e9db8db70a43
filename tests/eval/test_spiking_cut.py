"""ANN against spiking satellite parts: what is counted on board, and the ledger's spiking rows."""

from __future__ import annotations

import math

import pytest
import torch

from devices import get_device
from research.data.eurosat import EuroSATDataModule
from research.eval.evaluate import run_schemes
from research.eval.scenario import parse_scenario
from research.eval.spiking_cut import ann_identity, from_checkpoint, measure, ratios
from snn import count_ops


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = EuroSATDataModule(root=None).subset("test").tensors
    return x[:24], y[:24]


def test_everything_on_board_is_counted_and_the_spiking_blocks_add_no_macs(
        tiny_checkpoint, tiny_spiking_checkpoint, images):
    snn = from_checkpoint(tiny_spiking_checkpoint)
    ann = ann_identity(tiny_checkpoint, 1)
    assert (snn.family, snn.cut, ann.family, ann.cut) == ("snn", 1, "ann", 1)
    rows = [measure(c, *images) for c in (ann, snn)]
    model = snn.classifier.model
    x = snn.classifier.normalize(images[0])
    # dense MACs left on board: the patch embedding (pixels) and the link encoder (real tokens)
    embed = count_ops(model.vit.patch_embed, x).energy().macs
    tokens = model.satellite_part(x)
    encoder = count_ops(snn.link.encoder, tokens).energy().macs
    assert rows[1]["macs"] == pytest.approx(embed + encoder)
    assert rows[1]["synops"] > 0 and 0 < rows[1]["firing_rate"] < 1
    # the ANN split at the same cut: patch embedding + one dense block, nothing spiking
    assert rows[0]["synops"] == 0 and rows[0]["macs"] > embed
    # real payloads: the spike link's bytes are what compress returns
    with torch.no_grad():
        sizes = [len(p) for p in snn.link.compress(tokens)]
    assert rows[1]["bytes_per_inference"] == pytest.approx(sum(sizes) / len(sizes))
    # dense hardware runs every spiking synapse at every step (T=2): the SNN costs more there
    assert rows[1]["energy_j_jetson_nano"] > rows[0]["energy_j_jetson_nano"]
    (pair,) = ratios(rows)
    assert pair["cut"] == 1 and pair["energy_saving_cmos45nm"] == pytest.approx(
        rows[0]["energy_j_cmos45nm"] / rows[1]["energy_j_cmos45nm"])


def test_a_classifier_checkpoint_is_not_a_cut_configuration(tiny_checkpoint):
    with pytest.raises(ValueError, match="not a CodecTask"):
        from_checkpoint(tiny_checkpoint)


def test_spiking_scheme_in_the_ledger_gets_event_driven_energy(raw_scenario, tiny_spiking_checkpoint):
    raw_scenario["schemes"] = [
        {"name": "split-identity", "kind": "split", "link": "identity"},
        {"name": "snn-spike", "kind": "split", "checkpoint": tiny_spiking_checkpoint},
        {"name": "raw", "kind": "image", "format": "raw"},
        {"name": "onboard", "kind": "onboard"},
    ]
    raw_scenario["profiles"]["event_driven"] = "cmos45nm"
    scenario = parse_scenario(raw_scenario, "tiny.yaml")
    x, _ = EuroSATDataModule(root=None).subset("test").tensors
    outputs, _ = run_schemes(scenario, x[:12], progress=False)
    raw_scenario["profiles"].pop("event_driven")
    plain, _ = run_schemes(parse_scenario(raw_scenario, "tiny.yaml"), x[:12], progress=False)
    for name, out in outputs.items():  # counting ops changes no prediction (modes restored)
        assert (out.predictions == plain[name].predictions).all(), name
    assert math.isnan(plain["snn-spike"].onboard_event_j)
    assert outputs["raw"].onboard_event_j == 0.0
    assert outputs["snn-spike"].onboard_event_j > 0 and outputs["onboard"].onboard_event_j > 0
    # the spiking scheme's dense FLOPs (T steps of every synapse) exceed the ANN split's
    assert outputs["snn-spike"].flops_onboard > outputs["split-identity"].flops_onboard


def test_the_ledger_summary_and_table_carry_the_event_driven_column(scenario, tmp_path):
    from rich.console import Console

    from research.eval.evaluate import evaluate
    from research.eval.report import print_summary

    scenario.event_profile = get_device("cmos45nm")
    result = evaluate(scenario, progress=False)
    assert all(s["energy_onboard_event_j"] >= 0 for s in result.summary)
    onboard = next(s for s in result.summary if s["scheme"] == "onboard")
    assert onboard["energy_onboard_event_j"] > 0
    console = Console(record=True, width=200)
    print_summary(result.summary, "t", console=console)
    assert "event-driven" in console.export_text()


def test_a_dense_profile_is_not_an_event_driven_one(raw_scenario):
    from research.eval.scenario import ScenarioError

    raw_scenario["profiles"]["event_driven"] = "jetson_nano"
    with pytest.raises(ScenarioError, match="dense profile"):
        parse_scenario(raw_scenario, "tiny.yaml")


def test_spiking_blocks_can_be_measured_behind_the_identity_link(tiny_spiking_checkpoint, images):
    coded = measure(from_checkpoint(tiny_spiking_checkpoint), *images)
    plain = measure(from_checkpoint(tiny_spiking_checkpoint, link="identity"), *images)
    assert (plain["family"], plain["link"], plain["name"]) == ("snn", "identity", "snn-identity@1")
    assert plain["bytes_per_inference"] > coded["bytes_per_inference"]
    # the same spiking blocks emit the same spikes; the spike link's encoder adds dense MACs
    assert plain["synops"] == coded["synops"] and plain["macs"] < coded["macs"]


def test_labelled_checkpoints_of_one_family_link_and_cut_get_distinct_names(tiny_spiking_checkpoint):
    plain = from_checkpoint(tiny_spiking_checkpoint)
    a = from_checkpoint(tiny_spiking_checkpoint, label="GPU joint")
    b = from_checkpoint(tiny_spiking_checkpoint, link="identity", label="GPU joint")
    assert a.name == f"{plain.name} (GPU joint)"
    assert b.name == "snn-identity@1 (GPU joint)"
