"""The scheme comparison behind fig_fed_time: every run on one plan, repeated over seeds."""

from __future__ import annotations

import csv
import json

from research.fed.compare import compare, seed_changes
from research.fed.config import parse_config
from research.fed.runner import prepare
from tests.fed.conftest import tiny_raw


def test_seeds_repeat_the_headline_runs_and_report_the_spread(tiny_plan, tmp_path):
    base = parse_config(tiny_raw(train={**tiny_raw()["train"], "rounds": 2}))
    out = tmp_path / "out"
    ratios = compare(base, out, ["collaborative", "onboard", "centralised", "collab_int8"],
                     tmp_path / "runs",
                     command="test", plan=tiny_plan, cache_dir=str(tmp_path / "cache"),
                     seeds=(0, 1, 2), seeded=("collaborative", "onboard", "centralised"))
    assert "collaborative / onboard" in ratios and "collaborative / centralised" in ratios
    summary = json.loads((out / "fed_time_summary.json").read_text())
    spread = summary["ratios_over_seeds"]["collaborative / onboard"]
    assert spread["seeds"] == [0, 1, 2] and len(spread["ratio"]) == 3
    assert spread["ratio_min"] <= spread["ratio_mean"] <= spread["ratio_max"]
    with open(out / "fed_time_ledger.csv") as fh:
        seen = {(r["run"], r["seed"]) for r in csv.DictReader(fh)}
    assert seen == {(n, str(s)) for n in ("collaborative", "onboard", "centralised")
                    for s in (0, 1, 2)} | {("collab_int8", "0")}  # an ablation: one seed
    down = {name: run["bytes"]["downlink"] for name, run in summary["runs"].items()}
    assert down["collab_int8"] < down["collaborative"] / 3  # about a byte a value, not four
    assert "Over seeds [0, 1, 2] (collaborative / onboard" in (out / "fed_time_caption.md").read_text()
    assert (out / "fed_time.png").is_file()


def test_a_seed_deals_the_images_anew_on_the_same_features(tiny_plan, tmp_path):
    base = parse_config(tiny_raw())
    cache = str(tmp_path / "cache")
    a = prepare(base, plan=tiny_plan, cache_dir=cache)
    b = prepare(base.replace(**seed_changes(1)), plan=tiny_plan, cache_dir=cache)
    assert len(list((tmp_path / "cache").glob("features-*.pt"))) == 1  # one encoding for both
    assert (a.data.test_y == b.data.test_y).all()
    assert [c.n for c in a.clients] != [c.n for c in b.clients]
    assert base.replace(**seed_changes(1)).train.seed == 1 and seed_changes(0) == {}


def test_a_default_sweep_skips_variants_its_base_cannot_take():
    """``collab_int8_both`` needs a trained encoder: a head-only base skips it (a full sweep
    must not fail half-way), a split base keeps it."""
    from research.fed.compare import VARIANTS, applicable_variants

    head = parse_config(tiny_raw())
    split = parse_config(tiny_raw(model={"backbone": "satvit_tiny", "weights": None,
                                         "trainable": "split"},
                                  comm={"reuse_features": False}))
    kept = applicable_variants(head, list(VARIANTS))
    assert "collab_int8_both" not in kept and "collab_int8" in kept
    assert "collab_int8_both" in applicable_variants(split, ["collab_int8_both"])
