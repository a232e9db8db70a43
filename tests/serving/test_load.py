"""The serving load sweep: more offered load never delivers a larger share in time, the break
load is the first load that misses, and the script writes its files."""

from __future__ import annotations

import json

import pytest
import yaml

from research.paths import REPO_ROOT
from research.serving.config import parse_serve_config
from research.serving.load import break_loads, serving_load_sweep


def _tiny() -> dict:
    raw = yaml.safe_load((REPO_ROOT / "experiments" / "serving" / "quick.yaml").read_text())
    raw["orbit"]["duration_s"] = 600
    raw["workload"].update(horizon_s=600, sources=2, tiles=64, deadline_s=60)
    raw["placement"]["epoch_s"] = 300
    raw["evaluate"]["images"] = 20
    raw["model"].update(coarse_train_images=60, coarse_steps=10)
    return raw


def test_break_load_is_the_first_load_that_misses():
    rows = [{"scheme": "a", "tasks": "x", "per_orbit": load, "delivered_fraction": f}
            for load, f in ((1, 1.0), (4, 0.995), (16, 0.5), (64, 1.0))]
    rows += [{"scheme": "b", "tasks": "x", "per_orbit": 1, "delivered_fraction": 1.0}]
    assert break_loads(rows) == {"a|x": 16, "b|x": None}


def test_sweep_rows_per_load_task_set_and_scheme(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = parse_serve_config(_tiny(), "tiny.yaml")
    rows, meta = serving_load_sweep(cfg, [40, 4000], [["landcover"], ["landcover", "coarse"]],
                                    progress=False)
    schemes = {r["scheme"] for r in rows}
    assert {"microservice", "onboard_shared", "ground_raw", "ground_jpeg"} <= schemes
    assert len(rows) == 2 * 2 * len(schemes)
    for s in schemes:
        for tasks in ("landcover", "landcover+coarse"):
            lo, hi = (next(r for r in rows if r["scheme"] == s and r["tasks"] == tasks
                           and r["per_orbit"] == x) for x in (40, 4000))
            assert hi["requests"] > 20 * lo["requests"] > 0
            assert hi["delivered_fraction"] <= lo["delivered_fraction"]
    # at 4,000 captures per orbit (64 tiles, a 60 s deadline) raw downlink cannot keep up
    assert meta["break_loads"]["ground_raw|landcover"] in (40, 4000)
    with pytest.raises(ValueError, match="expected tasks of the workload"):
        serving_load_sweep(cfg, [1], [["sar"]], progress=False)
    with pytest.raises(ValueError, match="captures per source per orbit > 0"):
        serving_load_sweep(cfg, [0], progress=False)


def test_script_writes_the_sweep(tmp_path, monkeypatch):
    import runpy

    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(_tiny()))
    main = runpy.run_path(str(REPO_ROOT / "scripts" / "fig_serving_load.py"))["main"]
    assert main(["--config", str(cfg), "--loads", "4", "--out", str(tmp_path / "o")]) == 0
    meta = json.loads((tmp_path / "o" / "serving_load.json").read_text())
    assert meta["command"].startswith("python scripts/fig_serving_load.py")
    assert (tmp_path / "o" / "serving_load.png").stat().st_size > 1000
    assert main(["--config", str(cfg), "--loads", "-1", "--out", str(tmp_path / "o")]) == 2
