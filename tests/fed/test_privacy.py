"""Differential privacy of federated fine-tuning: calibration, the on-board step, accounting."""

from __future__ import annotations

import copy

import pytest
import torch

from research.fed.clients import client_update, exchanged_state
from research.fed.config import FedConfigError, PrivacyConfig, TrainConfig, parse_config
from research.fed.privacy import Privacy, rdp_epsilon
from research.fed.runner import run
from research.models.averaging import flatten
from tests.fed.conftest import tiny_raw


def _privacy(level: str, **kw) -> Privacy:
    return Privacy(PrivacyConfig(level=level, **kw), TrainConfig(rounds=10, batch_size=16,
                                                                 local_epochs=1))


def test_calibrated_noise_meets_the_target_epsilon_and_more_epsilon_means_less_noise():
    z8 = _privacy("satellite", epsilon=8.0).satellite_noise_multiplier()
    z2 = _privacy("satellite", epsilon=2.0).satellite_noise_multiplier()
    assert z2 > z8 > 0
    assert rdp_epsilon([(z8, 1.0, 10)], 1e-5) == pytest.approx(8.0, abs=0.05)


def test_image_plan_uses_the_shard_size_and_caps_the_rate_at_one():
    p = _privacy("image", epsilon=4.0)
    big, small = p.image_plan(160), p.image_plan(8)
    assert big.sample_rate == pytest.approx(0.1) and big.steps_per_round == 10
    assert small.sample_rate == 1.0 and small.steps_per_round == 1
    for plan in (big, small):
        eps = rdp_epsilon([(plan.noise_multiplier, plan.sample_rate,
                            plan.steps_per_round * 10)], 1e-5)
        assert eps <= 4.0 + 0.05


def test_noised_update_is_clipped_and_the_cohort_sum_carries_the_full_noise():
    old = {"w": torch.zeros(20_000)}
    new = {"w": torch.full((20_000,), 10.0)}  # norm 1414: clipped to 1
    p = _privacy("satellite", noise_multiplier=2.0, clip=1.0)
    no_noise = _privacy("satellite", noise_multiplier=1e-12, clip=1.0)
    assert float(flatten(no_noise.noised_update(new, old, 4, 0)).norm()) == pytest.approx(1.0)
    k = 4
    total = sum(flatten(p.noised_update(old, old, k, seed)) for seed in range(k))
    assert float(total.std()) == pytest.approx(2.0, rel=0.03)  # z * clip on the sum
    assert not torch.equal(p.noised_update(old, old, k, 0)["w"], p.noised_update(old, old, k,
                                                                                   1)["w"])


def test_dp_sgd_clips_every_image_and_adds_noise(tiny_setup):
    x, y = tiny_setup.data.train_x[:64], tiny_setup.data.train_y[:64]

    def trained(privacy: Privacy, seed: int) -> torch.Tensor:
        head = copy.deepcopy(tiny_setup.template)
        privacy.dp_sgd(head, x, y, seed)
        return flatten(exchanged_state(head))

    start = flatten(exchanged_state(tiny_setup.template))
    quiet = _privacy("image", noise_multiplier=1e-9, clip=1e-3)
    # per-image clipping: 4 steps, each moving at most lr * clip (times momentum's sum)
    moved = float((trained(quiet, 0) - start).norm())
    assert 0 < moved < 0.1 * 1e-3 * (1 + 1.9 + 2.71 + 3.44)
    loud = _privacy("image", noise_multiplier=5.0, clip=1.0)
    assert not torch.allclose(trained(loud, 0), trained(loud, 1))
    assert torch.equal(trained(loud, 0), trained(loud, 0))  # seeded: runs reproduce


@pytest.mark.parametrize(("privacy", "message"), [
    ({"level": "local"}, "privacy.level"),
    ({"level": "satellite"}, "exactly one of privacy.epsilon"),
    ({"level": "satellite", "epsilon": 8, "noise_multiplier": 1.0}, "exactly one"),
    ({"level": "none", "epsilon": 8}, "need privacy.level"),
    ({"level": "image", "epsilon": -1}, "privacy.epsilon must be a finite number > 0"),
    ({"level": "image", "epsilon": 8, "delta": 1.0}, "privacy.delta"),
    ({"level": "image", "epsilon": 8, "clip": 0}, "privacy.clip"),
])
def test_bad_privacy_config_names_the_key(privacy, message):
    with pytest.raises(FedConfigError, match=message):
        parse_config(tiny_raw(privacy=privacy))


@pytest.mark.parametrize("level", ["satellite", "image"])
def test_private_run_spends_at_most_the_target_and_the_ledger_says_so(tiny_setup, tmp_path,
                                                                      level):
    cfg = parse_config(tiny_raw(privacy={"level": level, "epsilon": 4.0},
                                out_dir=str(tmp_path / level)))
    rows = run(cfg, setup=tiny_setup, resume=False).rows
    eps = [r["epsilon"] for r in rows]
    assert eps == sorted(eps) and eps[-1] <= 4.0 + 0.05
    assert all(r["delta"] == 1e-5 and r["dp_noise_multiplier"] > 0 for r in rows)
    plain = run(parse_config(tiny_raw(out_dir=str(tmp_path / "plain"))), setup=tiny_setup,
                resume=False)
    assert "epsilon" not in plain.rows[-1]
    assert not torch.equal(flatten(plain.head), flatten(run(cfg, setup=tiny_setup).head))


def test_private_run_resumes_exactly(tiny_setup, tmp_path):
    cfg = parse_config(tiny_raw(privacy={"level": "satellite", "epsilon": 4.0},
                                out_dir=str(tmp_path / "a")))
    full = run(cfg, setup=tiny_setup, resume=False)
    cut = cfg.replace(out_dir=str(tmp_path / "b"))
    first = run(cut, setup=tiny_setup, resume=False, max_rounds=1)
    assert len(first.rows) == 1
    resumed = run(cut, setup=tiny_setup)
    assert torch.equal(flatten(full.head), flatten(resumed.head))
    assert [r["epsilon"] for r in full.rows] == [r["epsilon"] for r in resumed.rows]


def test_satellite_level_aggregation_is_unweighted(tiny_setup, tmp_path):
    """Without noise and clipping, satellite-level DP gives the plain (unweighted) mean."""
    cfg = parse_config(tiny_raw(topology="star", train={**tiny_raw()["train"], "rounds": 1},
                                privacy={"level": "satellite", "noise_multiplier": 1e-12,
                                         "clip": 1e3}, out_dir=str(tmp_path)))
    res = run(cfg, setup=tiny_setup, resume=False)
    dropped = {d.split(":")[0] for d in res.rows[0]["dropped_ids"].split(";") if d}
    idx = [i for i, c in enumerate(tiny_setup.clients) if c.sat not in dropped]
    assert res.rows[0]["participants"] == len(idx) >= 2
    ups = [flatten(client_update(tiny_setup.template, tiny_setup.data, tiny_setup.clients[i], i,
                                 tiny_setup.initial, cfg.train, 1)) for i in idx]
    sizes = torch.tensor([float(tiny_setup.clients[i].n) for i in idx], dtype=torch.float64)
    uniform = torch.stack(ups).mean(0)
    weighted = (torch.stack(ups) * sizes[:, None]).sum(0) / sizes.sum()
    got = flatten(res.head)
    assert torch.allclose(got, uniform, atol=1e-5)
    assert not torch.allclose(got, weighted, atol=1e-5)


def test_privacy_curve_writes_rows_summary_and_figure(tiny_setup, tmp_path):
    from research.fed.privacy_curve import replot, sweep

    base = parse_config(tiny_raw())
    summary = sweep(base, tmp_path / "out", levels=["satellite"], epsilons=[2.0, 8.0],
                    seeds=[0, 1], clips={"satellite": 1.0}, runs=tmp_path / "runs",
                    setup=tiny_setup)
    assert summary["non_private"]["seeds"] == 2
    assert [e["target_epsilon"] for e in summary["private"]] == [2.0, 8.0]
    for e in summary["private"]:
        assert e["epsilon_spent_max"] <= e["target_epsilon"] + 0.05
        assert e["gap_pts"] == pytest.approx(summary["non_private"]["accuracy_mean_pct"]
                                             - e["accuracy_mean_pct"])
    assert summary["local_update_cost"]["satellite"]["cpu_s_per_round"] > 0
    (clip_only,) = summary["clip_only"]
    assert clip_only["level"] == "satellite" and clip_only["seeds"] == 2
    for name in ("fed_privacy.png", "fed_privacy.pdf", "fed_privacy_runs.csv",
                 "fed_privacy_ledger.json", "fed_privacy_summary.json"):
        assert (tmp_path / "out" / name).is_file()
    (tmp_path / "out" / "fed_privacy.png").unlink()
    replot(tmp_path / "out")
    assert (tmp_path / "out" / "fed_privacy.png").is_file()


def test_lost_updates_are_accounted_with_the_noise_that_reached_the_sum():
    p = _privacy("satellite", epsilon=4.0)
    z = p.satellite_noise_multiplier()
    full = p.columns([{"participants": 8}], trained=8, shard_sizes=[10] * 8)
    assert full["dp_noise_multiplier"] == pytest.approx(z)
    with pytest.warns(UserWarning, match="past the target"):
        rows = [{"participants": 8, **full}] * 9 + [{"participants": 2}]
        lossy = p.columns(rows, trained=8, shard_sizes=[10] * 8)
    assert lossy["dp_noise_multiplier"] == pytest.approx(z / 2)
    assert lossy["epsilon"] > 4.0


def test_satellite_level_update_needs_its_cohort():
    p = _privacy("satellite", epsilon=4.0)
    with pytest.raises(ValueError, match="cohort"):
        p.noised_update({"w": torch.ones(3)}, {"w": torch.zeros(3)}, None, 0)


def test_regime_runs_one_sweep_per_walker_shell(tmp_path):
    from research.fed.privacy_curve import regime
    from research.fed.scenarios import walker_scenario

    base = parse_config(tiny_raw(train={**tiny_raw()["train"], "rounds": 1}))
    scen = walker_scenario(base, 2, 4, duration_s=6 * 3600)
    assert scen["constellation"]["walker"]["planes"] == 2
    assert scen["stations"] == base.scenario["stations"]  # the base scenario's ground segment
    rows = regime(base, tmp_path / "out", [(2, 4), (2, 8)], epsilon=8.0, seeds=[0], clip=1.0,
                  runs=tmp_path / "runs", cache_dir=str(tmp_path / "cache"))
    assert [r["satellites"] for r in rows] == [8, 16]
    assert rows[1]["noise_std_on_mean_over_clip"] < rows[0]["noise_std_on_mean_over_clip"]
    assert (tmp_path / "out" / "fed_privacy_regime.png").is_file()
    assert (tmp_path / "out" / "fed_privacy_regime.csv").is_file()


def test_unreachable_epsilon_is_named_before_the_first_round():
    with pytest.raises(ValueError, match=r"privacy.epsilon=0.0001 .* cannot be reached"):
        _privacy("satellite", epsilon=1e-4)


def test_replace_adjacency_doubles_the_noise_for_the_same_epsilon(tiny_setup, tmp_path):
    train = TrainConfig(rounds=5)
    zero = Privacy(PrivacyConfig(level="satellite", epsilon=4.0), train)
    replace = Privacy(PrivacyConfig(level="satellite", epsilon=4.0, adjacency="replace"), train)
    assert replace.satellite_noise_multiplier() == pytest.approx(
        2 * zero.satellite_noise_multiplier())
    raw = tiny_raw(out_dir=str(tmp_path / "r"),
                   privacy={"level": "satellite", "epsilon": 4.0, "adjacency": "replace"})
    rows = run(parse_config(raw), setup=tiny_setup, resume=False).rows
    assert rows[-1]["epsilon"] <= 4.0 * 1.001
    # the same applied noise under zero-out adjacency spends far less
    z = rows[-1]["dp_noise_multiplier"]
    assert rdp_epsilon([(z, 1.0, len(rows))], 1e-5) < 0.5 * rows[-1]["epsilon"]


@pytest.mark.parametrize("privacy, message", [
    ({"level": "satellite", "epsilon": 4.0, "adjacency": "swap"}, "zero_out or replace"),
    ({"level": "image", "epsilon": 4.0, "adjacency": "replace"}, "is for level satellite"),
    ({"adjacency": "replace"}, "is for level satellite"),
])
def test_bad_adjacency_is_named(privacy, message):
    with pytest.raises(FedConfigError, match=message):
        parse_config(tiny_raw(privacy=privacy))


def test_server_opt_grid_gives_every_arm_the_same_settings(tiny_setup, tmp_path):
    import math

    from research.fed.privacy_tuning import median_step_norm, server_opt_grid

    base = parse_config(tiny_raw())
    rows = server_opt_grid(base, tmp_path / "out", [(1.0, 0.0), (1.5, 0.5), (1.0, 0.0, 1)],
                           levels=["satellite"], epsilon=8.0, seed=0,
                           clips={"satellite": 1.0}, runs=tmp_path / "runs", setup=tiny_setup)
    assert [(r["server_lr"], r["server_momentum"], r["rounds"]) for r in rows] == [
        (1.0, 0.0, 2), (1.5, 0.5, 2), (1.0, 0.0, 1)]
    # fewer rounds: the same epsilon composes fewer mechanisms, so less noise on each
    assert rows[2]["satellite_noise_norm_on_mean"] < rows[0]["satellite_noise_norm_on_mean"]
    assert (tmp_path / "runs" / "slr1_m0_r1" / "none_seed0" / "round_0001.pt").is_file()
    # the non-private arm ran each setting too (its head, hence accuracy, follows the setting)
    assert (tmp_path / "runs" / "slr1.5_m0.5" / "none_seed0" / "round_0002.pt").is_file()
    dims = sum(v.numel() for v in tiny_setup.initial.values())
    cohort = sum(1 for c in tiny_setup.clients if c.n > 0)
    z = Privacy(PrivacyConfig(level="satellite", epsilon=8.0),
                TrainConfig(rounds=2)).satellite_noise_multiplier()
    assert rows[0]["satellite_noise_norm_on_mean"] == pytest.approx(z * math.sqrt(dims) / cohort)
    step = median_step_norm(tmp_path / "runs" / "slr1_m0" / "satellite_cliponly_seed0")
    assert rows[0]["satellite_clip_only_median_step"] == step and 0 < step <= 1.0 + 1e-6
    for name in ("fed_privacy_server_opt.png", "fed_privacy_server_opt.csv"):
        assert (tmp_path / "out" / name).is_file()


def test_noise_on_the_released_mean_has_the_norm_the_diagnostic_models():
    """The diagnostic of :mod:`research.fed.privacy_tuning`, ``z clip sqrt(d) / K``, is the norm
    of the noise the mechanism puts on the mean of K updates (d large: the norm concentrates)."""
    import math

    k, d, clip = 8, 40_000, 0.7
    p = Privacy(PrivacyConfig(level="satellite", epsilon=8.0, clip=clip), TrainConfig(rounds=5))
    old = {"w": torch.zeros(d)}
    mean = torch.stack([flatten(p.noised_update(old, old, k, seed=i)) for i in range(k)]).mean(0)
    model = p.satellite_noise_multiplier() * clip * math.sqrt(d) / k
    assert float(mean.norm()) == pytest.approx(model, rel=0.02)
