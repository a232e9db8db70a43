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
    assert set(summary["schemes"]) == {"microservice", "monolithic", "ground"}
    n = summary["schemes"]["microservice"]["requests"]
    assert n > 0 and all(s["requests"] == n for s in summary["schemes"].values())
    rows = (tmp_path / "out" / "outcomes.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * n
    header = set(rows[0].split(","))
    assert {*BYTES_FIELDS, *ENERGY_FIELDS, *LATENCY_FIELDS, "latency_s"} <= header
    ledger = json.loads((tmp_path / "out" / "outcomes.json").read_text())
    assert len(ledger["rows"]) == 3 * n and ledger["name"] == raw["name"]
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
