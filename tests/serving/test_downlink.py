"""The downlink-rate sweep: the cap reaches the plan's link model, a narrower downlink never
delivers more raw tiles, the advantage names the best other scheme, and the script writes."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import yaml

from research.paths import REPO_ROOT
from research.serving.config import parse_serve_config
from research.serving.downlink import advantage, downlink_sweep, with_downlink_cap
from tests.serving.test_load import _tiny


def test_cap_reaches_the_link_model_and_keeps_the_rest():
    cfg = parse_serve_config(_tiny(), "tiny.yaml")
    capped = with_downlink_cap(cfg, 2e6)
    before = dataclasses.asdict(with_downlink_cap(cfg, None).orbit_config().links["downlink"])
    after = dataclasses.asdict(capped.orbit_config().links["downlink"])
    assert after.pop("max_rate_bps") == 2e6 and before.pop("max_rate_bps") is None
    assert after == before
    assert capped.workload == cfg.workload and capped.name == cfg.name
    for bad in (0, -1.0, math.inf):
        with pytest.raises(ValueError, match="downlink rate cap"):
            with_downlink_cap(cfg, bad)


def test_narrower_downlink_delivers_no_more_raw_tiles(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = parse_serve_config(_tiny(), "tiny.yaml")
    rows, meta = downlink_sweep(cfg, [0.2e6, None], 2000, [["landcover"]], progress=False)
    schemes = {r["scheme"] for r in rows}
    assert len(rows) == 2 * len(schemes)
    raw = {r["downlink_max_rate_bps"]: r for r in rows if r["scheme"] == "ground_raw"}
    assert raw[0.2e6]["delivered_tiles"] < raw[None]["delivered_tiles"]
    assert raw[0.2e6]["bytes_downlink"] < raw[None]["bytes_downlink"]
    assert {(a["downlink_max_rate_bps"], a["tasks"]) for a in meta["advantage"]} == {
        (0.2e6, "landcover"), (None, "landcover")}
    with pytest.raises(ValueError, match="expected tasks of the workload"):
        downlink_sweep(cfg, [None], 10, [["sar"]], progress=False)
    with pytest.raises(ValueError, match="per_orbit"):
        downlink_sweep(cfg, [None], 0, progress=False)


def test_advantage_over_the_best_other_scheme():
    def row(rate, scheme, tiles, p95=1.0):
        return {"downlink_max_rate_bps": rate, "tasks": "t", "scheme": scheme,
                "delivered_tiles": tiles, "p95_latency_s": p95}

    rows = [row(1, "microservice", 300), row(1, "a", 100), row(1, "b", 150),
            row(2, "microservice", 10, p95=900), row(2, "a", 0), row(2, "b", 0),
            row(3, "microservice", 0, p95=math.inf), row(3, "a", 0)]
    a1, a2, a3 = advantage(rows, deadline_s=300)
    assert (a1["best_other"], a1["ratio"], a1["p95_within_deadline"]) == ("b", 2.0, True)
    assert a2["ratio"] == math.inf and not a2["p95_within_deadline"]
    assert math.isnan(a3["ratio"])  # nobody delivers: no advantage either way


def test_script_writes_the_sweep(tmp_path, monkeypatch):
    import runpy

    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(_tiny()))
    main = runpy.run_path(str(REPO_ROOT / "scripts" / "fig_serving_downlink.py"))["main"]
    out = tmp_path / "o"
    assert main(["--config", str(cfg), "--rates", "1", "none", "--load", "40",
                 "--out", str(out)]) == 0
    meta = json.loads((out / "serving_downlink.json").read_text())
    assert meta["command"].startswith("python scripts/fig_serving_downlink.py")
    assert meta["rates_bps"] == [1e6, None]
    assert (out / "serving_downlink.png").stat().st_size > 1000
    (out / "serving_downlink.png").unlink()
    assert main(["--replot", "--out", str(out)]) == 0
    assert (out / "serving_downlink.png").stat().st_size > 1000
    assert main(["--replot", "--out", str(tmp_path / "none")]) == 2
    with pytest.raises(SystemExit):
        main(["--config", str(cfg), "--rates", "-1", "--out", str(out)])
