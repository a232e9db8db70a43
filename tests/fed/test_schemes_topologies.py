"""Schemes and topologies are separate registered axes: every pair runs end to end on the tiny
scenario, learns and books its bytes; bad names and impossible pairs are refused by name."""

from __future__ import annotations

import pytest

from research.fed.config import FedConfigError, parse_config
from research.fed.runner import run
from research.fed.schemes import FedScheme, get_scheme, list_schemes, register_scheme
from research.fed.topologies import get_topology, list_topologies
from tests.fed.conftest import GRID_SCENARIO, tiny_raw


@pytest.mark.parametrize("topology", ["ring", "star", "gossip"])
@pytest.mark.parametrize("scheme", ["collaborative", "onboard"])
def test_every_scheme_runs_with_every_topology(scheme, topology, request, tmp_path):
    if topology == "gossip":  # needs ISLs joining every satellite: a 6 x 10 shell
        setup = request.getfixturevalue("grid_setup")
        extra = {"scenario": GRID_SCENARIO, "comm": {"gossip_tol": 0.05}}
    else:
        setup, extra = request.getfixturevalue("tiny_setup"), {}
    cfg = parse_config(tiny_raw(out_dir=str(tmp_path), scheme=scheme, topology=topology,
                                **extra))
    res = run(cfg, setup=setup)
    assert [r["round"] for r in res.rows] == [1, 2]
    assert res.rows[-1]["accuracy"] > res.initial_accuracy
    assert all(r["bytes_model_exchange"] > 0 for r in res.rows)
    labels = {r["aggregation"] for r in res.rows}
    if topology == "ring":
        assert labels <= {"ring", "ring+isl", "ring+ground"}
    else:
        assert labels == {topology}
    moved = res.rows[0]["bytes_downlink"] - (  # gossip: no model byte touches the ground
        0 if topology == "gossip" else res.rows[0]["bytes_model_exchange"])
    if scheme == "collaborative":  # embeddings go down besides the updates
        assert moved > 0
    if topology != "star":  # updates travel over ISLs
        assert res.rows[0]["bytes_isl"] > 0


def test_the_ring_is_faster_than_the_star_for_the_onboard_scheme_too(tiny_setup, tmp_path):
    """The on-board baseline is no longer barred from the ring (it used to be silently)."""
    t = {}
    for topology in ("ring", "star"):
        cfg = parse_config(tiny_raw(out_dir=str(tmp_path / topology), scheme="onboard",
                                    topology=topology, train={"rounds": 1}))
        t[topology] = run(cfg, setup=tiny_setup).rows[0]["t_end_s"]
    assert t["ring"] < t["star"] / 5


def test_unknown_names_and_impossible_pairs_are_refused():
    with pytest.raises(FedConfigError, match="unknown topology 'gosip'.*ring"):
        parse_config(tiny_raw(topology="gosip"))
    with pytest.raises(FedConfigError, match="unknown federated scheme 'onbord'"):
        parse_config(tiny_raw(scheme="onbord"))
    with pytest.raises(FedConfigError, match="ring_aggregation is gone.*topology"):
        parse_config(tiny_raw(comm={"ring_aggregation": False}))


@pytest.fixture
def star_only():
    from research.fed import schemes

    class StarOnly(FedScheme):
        topologies = ("star",)

    yield register_scheme("star_only")(StarOnly)
    schemes._SCHEMES.unregister("star_only")


def test_a_scheme_that_lists_its_topologies_refuses_the_others(star_only):
    StarOnly = star_only
    assert "star_only" in list_schemes() and get_scheme("star_only") is StarOnly
    assert parse_config(tiny_raw(scheme="star_only", topology="star")).scheme == "star_only"
    with pytest.raises(FedConfigError, match="'star_only' cannot use topology 'ring'"):
        parse_config(tiny_raw(scheme="star_only", topology="ring"))
    with pytest.raises(ValueError, match="already registered"):
        register_scheme("onboard")(StarOnly)
    assert set(list_topologies()) >= {"ring", "star"} and get_topology("star").direct
