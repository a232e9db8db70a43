"""Flower's Simulation Engine (Ray) gives the same aggregated head as the in-process runner,
and resumes from the same checkpoints."""

from __future__ import annotations

import pytest
import torch

from research.fed.config import parse_config
from research.fed.runner import run
from tests.fed.conftest import tiny_raw

pytest.importorskip("ray")


@pytest.mark.slow
def test_flower_equals_in_process(tiny_setup, tmp_path):
    from research.fed.flower import run_flower

    cfg = parse_config(tiny_raw(out_dir=str(tmp_path / "flower"), scheme="onboard"))
    first = run_flower(cfg, tiny_setup, max_rounds=1)  # "killed" after round 1
    assert len(first.rows) == 1 and not (tmp_path / "flower" / "round_0002.pt").exists()
    flower = run_flower(cfg, tiny_setup)  # resumes at round 2
    local = run(cfg.replace(out_dir=str(tmp_path / "local")), setup=tiny_setup)
    assert len(flower.rows) == len(local.rows) == 2
    for k in local.head:
        assert torch.allclose(flower.head[k], local.head[k], atol=1e-6)
    assert [r["participants"] for r in flower.rows] == [r["participants"] for r in local.rows]


@pytest.mark.slow
def test_flower_private_run_equals_in_process(tiny_setup, tmp_path):
    """The ClientApp clips and noises its update for the cohort the ServerApp names."""
    from research.fed.flower import run_flower

    cfg = parse_config(tiny_raw(out_dir=str(tmp_path / "flower"),
                                privacy={"level": "satellite", "epsilon": 4.0}))
    flower = run_flower(cfg, tiny_setup)
    local = run(cfg.replace(out_dir=str(tmp_path / "local")), setup=tiny_setup)
    for k in local.head:
        assert torch.allclose(flower.head[k], local.head[k], atol=1e-6)
    assert [r["epsilon"] for r in flower.rows] == [r["epsilon"] for r in local.rows]


@pytest.mark.slow
def test_flower_secagg_plus_equals_in_process_secure_aggregation_with_dropouts(tiny_setup,
                                                                                tmp_path):
    """Flower's SecAgg+ workflow unmasks the same mean as the in-process SecAgg; 7 of the 20
    satellites that sent their shares miss the deadline and are unmasked as dropouts."""
    from research.fed.flower import run_flower

    cfg = parse_config(tiny_raw(out_dir=str(tmp_path / "flower"), scheme="onboard",
                                topology="star", train={"rounds": 1},
                                comm={"round_deadline_s": 14000}, secagg={"enabled": True}))
    flower = run_flower(cfg, tiny_setup)
    local = run(cfg.replace(out_dir=str(tmp_path / "local")), setup=tiny_setup)
    (f,), (lo,) = flower.rows, local.rows
    assert f["secagg_cohort"] == lo["secagg_cohort"] == 20
    assert f["participants"] == lo["participants"] == 13  # 7 dropouts after their shares
    assert f["secagg_max_abs_error"] is None  # the ServerApp never saw a plain update
    for k in local.head:  # Flower quantizes to 2**22 levels over [-8, 8]
        torch.testing.assert_close(flower.head[k], local.head[k], rtol=0, atol=1e-4)
    assert not torch.allclose(local.head["head.weight"], tiny_setup.initial["head.weight"])


@pytest.mark.slow
def test_one_supernode_per_plane_gives_the_same_head(tiny_setup, tmp_path):
    """Large shells run one SuperNode per orbital plane (each updates its plane's satellites)."""
    from research.fed.flower import node_groups, run_flower

    groups = node_groups(tiny_setup, "plane")
    assert len(groups) == 3 and sorted(i for g in groups for i in g) == list(range(30))
    cfg = parse_config(tiny_raw(out_dir=str(tmp_path / "flower"), scheme="onboard"))
    flower = run_flower(cfg, tiny_setup, nodes="plane")
    local = run(cfg.replace(out_dir=str(tmp_path / "local")), setup=tiny_setup)
    for k in local.head:
        assert torch.allclose(flower.head[k], local.head[k], atol=1e-6)
    with pytest.raises(ValueError, match="one SuperNode per satellite"):
        run_flower(cfg.replace(**{"secagg.enabled": True}), tiny_setup, nodes="plane")
    with pytest.raises(ValueError, match="'satellite' or 'plane'"):
        node_groups(tiny_setup, "station")


@pytest.mark.slow
def test_gossip_on_flower_equals_in_process(grid_setup, tmp_path):
    """Every topology runs on the Flower engine: gossip (no ground) gives the in-process head."""
    from research.fed.flower import run_flower
    from tests.fed.conftest import GRID_SCENARIO

    cfg = parse_config(tiny_raw(out_dir=str(tmp_path / "flower"), scheme="onboard",
                                topology="gossip", scenario=GRID_SCENARIO, train={"rounds": 1},
                                comm={"gossip_tol": 0.05}))
    flower = run_flower(cfg, grid_setup, nodes="plane")
    local = run(cfg.replace(out_dir=str(tmp_path / "local")), setup=grid_setup)
    for k in local.head:
        assert torch.allclose(flower.head[k], local.head[k], atol=1e-6)
    assert flower.rows[0]["gossip_steps"] == local.rows[0]["gossip_steps"] > 0
