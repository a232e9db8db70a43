"""Serving YAML: clear errors on unknown keys; a tiny end-to-end run through the CLI path."""

from __future__ import annotations

import json
import runpy

import pytest
import yaml

from research.paths import REPO_ROOT
from research.records import BYTES_FIELDS, ENERGY_FIELDS, LATENCY_FIELDS
from research.serving.cli import main
from research.serving.config import (
    ServingConfigError,
    load_serve_config,
    parse_serve_config,
)
from research.serving.figure import serving_figure


def _quick() -> dict:
    with open(REPO_ROOT / "experiments" / "serving" / "quick.yaml") as fh:
        return yaml.safe_load(fh)


def test_committed_configs_parse():
    for name in ("quick", "multitask"):
        cfg = load_serve_config(REPO_ROOT / "experiments" / "serving" / f"{name}.yaml")
        assert cfg.workload.tasks == ["landcover", "coarse", "retrieval"]


@pytest.mark.parametrize("patch, needle", [
    ({"workload": {"rate": 1.0}}, "unknown key 'rate'"),
    ({"placment": {}}, "did you mean 'placement'"),
    ({"placement": {"method": "anneal"}},
     r"placement.method: unknown placement method 'anneal'; expected one of \['greedy', 'milp'\]"),
    ({"model": {"checkpoint": "x.ckpt", "backbone": "satvit_tiny"}}, "exactly one"),
    ({"orbit": "demo"}, "orbit must be a mapping"),
    ({"workload": {"modality": "sar"}}, r"workload.modality 'sar'; expected one or a list of"),
    ({"workload": {"modality": ["rgb", "pan"]}}, r"\['pan'\] needs trained embedders"),
    ({"baselines": {"image_formats": ["gif"]}}, r"baselines.image_formats \['gif'\]"),
    ({"baselines": {"image_quality": 0}}, "quality in 1..100"),
    ({"evaluate": {"images": "many"}}, r"evaluate.images: 'many' is not of type int"),
    ({"workload": {"deadline_s": -5}}, "workload.deadline_s must be a finite number > 0"),
    ({"workload": {"horizon_s": float("inf")}}, "workload.horizon_s must be a finite number"),
    ({"evaluate": {"images": -5}}, "evaluate.images must be >= 1"),
    ({"evaluate": {"recall_k": [0, -1]}}, r"evaluate.recall_k must be a list of integers >= 1"),
    ({"model": {"coarse_steps": -3}}, "model.coarse_steps must be >= 1"),
    ({"nodes": {"satellite_memory_bytes": -1.0}}, "nodes.satellite_memory_bytes must be"),
    ({"workload": {"tasks": ["landcover", "bogus"]}}, r"unknown \['bogus'\]"),
    ({"placement": {"link_volume_fraction": 0}}, r"placement: .*link_volume_fraction.*\(0, 1\]"),
])
def test_config_errors_are_clear(patch, needle):
    raw = _quick()
    for k, v in patch.items():
        raw[k] = {**raw[k], **v} if isinstance(v, dict) and isinstance(raw.get(k), dict) else v
    with pytest.raises(ServingConfigError, match=needle):
        parse_serve_config(raw)


def test_placement_method_is_checked_against_the_registry():
    from research.serving import placement

    raw = _quick()
    raw["placement"]["method"] = "mine"
    with pytest.raises(ServingConfigError, match="unknown placement method 'mine'"):
        parse_serve_config(raw)
    placement.register_placement("mine")(placement.greedy)
    try:
        assert parse_serve_config(raw).placement.method == "mine"
    finally:
        placement._METHODS.unregister("mine")


def test_cli_quick_run(tmp_path, capsys):
    raw = _quick()
    raw["orbit"]["duration_s"] = 600
    raw["workload"].update(horizon_s=600, sources=3)
    raw["placement"]["epoch_s"] = 300
    raw["evaluate"]["images"] = 20
    raw["model"].update(coarse_train_images=60, coarse_steps=10)
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    assert main(["--config", str(cfg_path), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(summary["schemes"]) == {"microservice", "onboard_shared", "monolithic",
                                       "ground_raw", "ground_jpeg"}
    n = summary["schemes"]["microservice"]["requests"]
    assert n > 0 and all(s["requests"] == n for s in summary["schemes"].values())
    jpeg = summary["accuracy"]["modalities"]["rgb"]["jpeg_bytes_per_tile"]
    assert 0 < jpeg < 12_288  # measured, smaller than the raw tile
    down = {s: v["bytes_downlink"] for s, v in summary["schemes"].items()}
    assert down["ground_jpeg"] < down["ground_raw"]
    # the strong on-board baseline runs the encoder once per capture, the weak one per task
    flops = {s: v["onboard_flops"] for s, v in summary["schemes"].items()}
    assert flops["onboard_shared"] < flops["monolithic"]
    rows = (tmp_path / "out" / "outcomes.csv").read_text().splitlines()
    assert len(rows) == 1 + 5 * n
    header = set(rows[0].split(","))
    assert {*BYTES_FIELDS, *ENERGY_FIELDS, *LATENCY_FIELDS, "latency_s"} <= header
    ledger = json.loads((tmp_path / "out" / "outcomes.json").read_text())
    assert len(ledger["rows"]) == 5 * n and ledger["name"] == raw["name"]
    assert "microservice" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**raw, "extra": 1}))
    assert main(["--config", str(bad)]) == 2
    assert main(["--config", str(cfg_path), "--set", "workload.rate=1.0"]) == 2
    assert "did you mean 'rate_hz'" in capsys.readouterr().err


@pytest.mark.slow
def test_fig_serving_quick(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    summary = serving_figure(load_serve_config(REPO_ROOT / "experiments" / "serving" / "quick.yaml"),
                             tmp_path)
    assert summary["verdict"]
    assert (tmp_path / "serving.png").stat().st_size > 1000
    assert (tmp_path / "serving.pdf").is_file()
    assert "microservice" in (tmp_path / "serving_caption.md").read_text()
    assert (tmp_path / "serving_schemes.csv").read_text().startswith("scheme,")


def test_fig_serving_script_parses_its_options(capsys):
    script = runpy.run_path(str(REPO_ROOT / "scripts" / "fig_serving.py"))
    with pytest.raises(SystemExit) as exit_:
        script["main"](["--help"])
    assert exit_.value.code == 0 and "--config" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_ray_run_survives_a_kill(tmp_path, capsys):
    """``satedge serve --runtime ray``: a bounded live run on Ray Serve with one replica killed
    inside a request; every request answered once, files written, Ray shut down."""
    pytest.importorskip("ray.serve")
    import ray

    raw = _quick()
    raw["orbit"]["duration_s"] = 600
    raw["workload"].update(horizon_s=600, sources=2, tasks=["landcover"], modality="rgb")
    raw["placement"]["epoch_s"] = 300
    raw["model"].update(coarse_train_images=60, coarse_steps=10)
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    assert main(["--config", str(cfg_path), "--runtime", "ray", "--requests", "24",
                 "--clients", "3", "--tiles", "2", "--kills", "1", "--port", "8771",
                 "--out", str(out)]) == 0
    assert not ray.is_initialized()
    summary = json.loads((out / "ray_summary.json").read_text())
    load = summary["load"]
    assert (load["sent"], load["answered"], load["lost"], load["duplicated"]) == (24, 24, 0, 0)
    assert summary["exactly_once"] and len(summary["kills"]) == 1
    assert summary["failovers"] + summary["hedges"] >= 1
    assert 0 < load["p50_latency_s"] <= load["p95_latency_s"] and load["throughput_rps"] > 0
    assert max(len(n) for n in summary["deployment"].values()) == 2
    rows = (out / "ray_requests.csv").read_text().splitlines()
    assert len(rows) == 25 and rows[0].startswith("request_id,client,")
    ledger = json.loads((out / "ray_requests.json").read_text())
    assert len(ledger["rows"]) == 24 and ledger["load"] == load
    assert "answered once and executed once: yes" in capsys.readouterr().out
