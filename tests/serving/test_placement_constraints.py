"""Placement limits that couple demands: link volume per epoch, energy per epoch (eclipse),
memory, compute, and the price of moving weights between epochs.

A toy plan (tests/orbit/toy.py: 1 MB/s links, constant range) and a one-segment toy catalog give
closed forms. Satellite ``s0`` sees station ``g0`` for the whole plan; its demands either send
their tokens down (``TOKEN_S`` s) and run on the ground, or run on board (``BOARD_S`` s of a
Jetson Nano) and send only results. The checks of the limits below recompute every use from
these closed forms, not through ``research.serving.placement``, so a broken limit in the module
makes them fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from devices import get_device
from research.orbit.isl import KIND_GROUND
from research.serving import placement as placement_module
from research.serving.placement import (
    Demand,
    Node,
    PlacementProblem,
    binding_constraints,
    fallbacks,
    greedy,
    link_volume_bytes,
    optimise,
    placement_gap,
    plan_epochs,
    register_placement,
    slack,
)
from research.serving.routing import Network
from tests.orbit.toy import DELAY, RATE, toy_plan

BYTES_S = RATE / 8  # 1 MB per second on every toy link
TILES = 100
BOARD_S = 15.0  # seconds of the encoder per request on a Jetson Nano
RESULT_BYTES = 100 * TILES
PARAM = {"emb": 1_000_000, "enc": 100_000_000, "head": 1_000_000}
EPOCH = 600.0
JETSON = get_device("jetson_nano")


def _problem(plan, demands, token_s: float, **kwargs) -> PlacementProblem:
    nodes = {s: Node(s, JETSON, True) for s in plan.satellites}
    nodes.update({g: Node(g, get_device("a100"), False) for g in plan.stations})
    enc = BOARD_S * JETSON.effective_flops / TILES
    kwargs.setdefault("epoch_s", EPOCH)
    return PlacementProblem(
        nodes, list(demands), dict(PARAM), {"emb": 0, "enc": enc, "head": 0},
        {"emb": 0, "enc": 0, "head": RESULT_BYTES // TILES}, {"rgb": "emb"}, ["enc"],
        {"a": "head"}, int(token_s * BYTES_S / TILES), **kwargs)


@pytest.fixture(scope="module")
def one_pass():
    """``s0`` in view of ``g0`` all along; ``s1`` linked to ``s0`` by an ISL, no ground pass."""
    return toy_plan({(0, 2, KIND_GROUND): [(0.0, 10_000.0)], (0, 1, 1): [(0.0, 10_000.0)]},
                    n_sat=2, n_gs=1)


TWO = [Demand("s0", ("a",), 0.05, TILES), Demand("s0", ("a",), 0.04, TILES)]


def _on_board_share(pl, i: int) -> float:
    return sum(s for n, s in pl.routes[i][0] if n == "s0")


def _check_toy_limits(p, pl) -> dict[str, float]:
    """Uses of s0's limits from closed forms (no module code); asserts each fits."""
    use = {"downlink": 0.0, "energy": 0.0, "compute": 0.0}
    for i, d in enumerate(p.demands):
        board = _on_board_share(pl, i)
        per_epoch = d.rate_hz * p.epoch_s
        use["downlink"] += per_epoch * ((1 - board) * p.payload_bytes(d.modality, d.tiles)
                                        + board * RESULT_BYTES)
        use["energy"] += per_epoch * board * BOARD_S * JETSON.power_w
        use["compute"] += board * d.rate_hz * BOARD_S
    if p.link_volume_fraction is not None:
        assert use["downlink"] <= p.link_volume_fraction * EPOCH * BYTES_S * (1 + 1e-6), use
    if p.energy_budget_j is not None:
        assert use["energy"] <= p.energy_budget_j * (1 + 1e-6), use
    assert use["compute"] <= p.max_utilisation * (1 + 1e-6), use  # utilisation of s0
    mem = pl.memory_by_node(p.param_bytes).get("s0", 0)
    assert mem <= p.nodes["s0"].memory
    assert not pl.info["violated"], pl.info
    return use


def test_tight_downlink_volume_milp_beats_greedy_and_names_the_limit(one_pass):
    """45 % of s0's downlink: greedy sends the 0.05 Hz demand down (30 % of the volume) and the
    0.04 Hz one (24 %) no longer fits, so it runs on board whole; the MILP sends 62 % of it down."""
    p = _problem(one_pass, TWO, token_s=6.0, link_volume_fraction=0.45)
    net = Network(one_pass)
    g, m = greedy(p, net, 0.0), optimise(p, net, 0.0)
    assert m.solver == "milp" and not m.info["fallback"], m.info
    assert [_on_board_share(g, i) for i in range(2)] == [0.0, 1.0]
    left = 0.45 * EPOCH * BYTES_S - 0.05 * EPOCH * 6e6  # volume left after the first demand
    down = (left - 0.04 * EPOCH * RESULT_BYTES) / (0.04 * EPOCH * (6e6 - RESULT_BYTES))
    assert _on_board_share(m, 0) + _on_board_share(m, 1) == pytest.approx(1 - down, abs=1e-6)
    # rate-weighted latency saved on the share of the second demand that goes down
    gain = 0.04 / 0.09 * down * (BOARD_S - 6.0)
    assert g.objective - m.objective == pytest.approx(gain, rel=1e-3)
    assert g.objective - m.objective > 2.0  # seconds
    assert binding_constraints(p, net, m) == ["downlink:s0"] == m.info["binding"]
    assert g.info["binding"] == []
    for pl in (g, m):
        _check_toy_limits(p, pl)
    gap = placement_gap(p, net, 0.0)
    assert gap["gap_s"] == pytest.approx(g.objective - m.objective)
    assert gap["binding_milp"] == ["downlink:s0"] and gap["solver"] == "milp"
    # without the limit both send everything down: nothing binds, no gap
    free = placement_gap(_problem(one_pass, TWO, token_s=6.0), net, 0.0)
    assert free["gap_s"] == pytest.approx(0.0, abs=1e-9) and free["binding_milp"] == []


def test_energy_budget_binds_and_greedy_finds_nothing_where_the_milp_splits(one_pass):
    """Board (15 s) beats a 20 s token downlink; 2000 J per epoch runs 0.04 Hz on board for
    2000 / 3600 of the epoch: greedy cannot place the demand whole on either path."""
    slow = _problem(one_pass, TWO[1:], token_s=20.0, energy_budget_j=2000.0,
                    link_volume_fraction=0.5)
    net = Network(one_pass)
    with pytest.raises(RuntimeError, match="no path for demand"):
        greedy(slow, net, 0.0)
    m = optimise(slow, net, 0.0)
    assert m.solver == "milp" and "no path" in m.info["greedy_error"]
    assert _on_board_share(m, 0) == pytest.approx(2000.0 / 3600.0, rel=1e-6)
    assert set(m.info["binding"]) == {"energy:s0"}
    _check_toy_limits(slow, m)
    assert math.isinf(placement_gap(slow, net, 0.0)["gap_s"])
    # a looser budget: both methods place it on board whole, nothing binds
    easy = _problem(one_pass, TWO[1:], token_s=20.0, energy_budget_j=4000.0)
    assert _on_board_share(greedy(easy, net, 0.0), 0) == 1.0
    assert _on_board_share(optimise(easy, net, 0.0), 0) == pytest.approx(1.0)


def test_eclipse_scales_the_energy_budget(one_pass):
    net = Network(one_pass)
    p = _problem(one_pass, TWO[1:], token_s=20.0, energy_budget_j=4000.0,
                 eclipse_energy_fraction=0.0)
    with pytest.raises(ValueError, match="eclipse_energy_fraction=0.0 needs a contact plan "
                                         "built with eclipse"):
        optimise(p, net, 0.0)
    steps = one_pass.grid.n_steps
    sunlit = np.zeros((2, steps), dtype=bool)
    sunlit[:, : int(EPOCH / one_pass.step_s) // 2] = True  # sunlit for the first half epoch
    one_pass.sunlit_bits = np.packbits(sunlit, axis=1)
    try:
        m = optimise(p, net, 0.0)  # 4000 J in sunlight -> 2000 J over the epoch
        assert _on_board_share(m, 0) == pytest.approx(2000.0 / 3600.0, rel=1e-6)
        assert slack(p, net, m)["energy:s0"] == pytest.approx(0.0, abs=1e-6)
    finally:
        one_pass.sunlit_bits = None


def test_shared_replica_counts_once_and_compute_couples_demands(one_pass):
    """Two demands on board share one encoder (memory counted once); their FLOP/s add up, so
    at 0.03 + 0.03 Hz x 15 s = 0.9 > 0.7 one must go down even though board is faster."""
    demands = [Demand("s0", ("a",), 0.03, TILES), Demand("s0", ("a",), 0.03, TILES)]
    net = Network(one_pass)
    p = _problem(one_pass, demands, token_s=20.0, memory_weight=0.0)
    p.nodes["s0"] = Node("s0", JETSON, True, sum(PARAM.values()))  # one encoder, no more
    g, m = greedy(p, net, 0.0), optimise(p, net, 0.0)
    assert _check_toy_limits(p, g)["compute"] == pytest.approx(0.45)  # one demand on board
    assert _check_toy_limits(p, m)["compute"] == pytest.approx(0.7, rel=1e-6)
    assert m.replicas["enc"] == ["g0", "s0"] and m.objective < g.objective - 0.5
    assert m.info["binding"] == ["compute:s0", "memory:s0"]


def test_migration_is_priced_and_plan_epochs_passes_the_previous_placement(one_pass):
    """Uploading the encoder to s0 takes 101 s (weights over the 1 MB/s uplink): at 0.1 s of
    objective per second it costs more than the 5 s board saves, unless s0 already holds it."""
    net = Network(one_pass)
    demand = [Demand("s0", ("a",), 0.04, TILES)]
    base = _problem(one_pass, demand, token_s=20.0, memory_weight=0.0, migration_weight=0.1)
    assert _on_board_share(optimise(base, net, 0.0), 0) == 1.0  # no previous epoch: preloaded
    moved = _problem(one_pass, demand, token_s=20.0, memory_weight=0.0, migration_weight=0.1,
                     previous_replicas={"emb": ["s0"]})
    for pl in (greedy(moved, net, 0.0), optimise(moved, net, 0.0)):
        assert pl.routes[0][0] == [("g0", 1.0)] and pl.info["migrations"] == []
    forced = _problem(one_pass, demand, token_s=200.0, memory_weight=0.0, migration_weight=0.1,
                      previous_replicas={"emb": ["s0"]})
    pl = optimise(forced, net, 0.0)
    upload = (PARAM["enc"] + PARAM["head"]) / BYTES_S + 2 * DELAY  # two uploads, in turn
    assert pl.routes[0][0] == [("s0", 1.0)] and pl.info["migrations"] == ["enc@s0", "head@s0"]
    latency = BOARD_S + RESULT_BYTES / BYTES_S + DELAY
    assert pl.objective == pytest.approx(latency + 0.1 * upload, rel=1e-3)
    seen = []

    @register_placement("milp-traced")
    def traced(p, net, t=0.0):
        seen.append((t, p.epoch_s, p.previous_replicas))
        return optimise(p, net, t)

    try:
        pls = plan_epochs(base, net, epoch_s=300.0, horizon_s=900.0, method="milp-traced")
    finally:
        placement_module._METHODS.unregister("milp-traced")
    assert [s[:2] for s in seen] == [(0.0, 300.0), (300.0, 300.0), (600.0, 300.0)]
    assert seen[0][2] is None and seen[1][2] == pls[0].replicas and seen[2][2] == pls[1].replicas
    assert [p.info["migrations"] for p in pls[1:]] == [[], []]


def test_fallback_is_reported_not_hidden(one_pass, monkeypatch):
    class NoPoint:
        x, status, message = None, 1, "time limit reached"

    monkeypatch.setattr(placement_module, "milp", lambda *a, **k: NoPoint())
    p = _problem(one_pass, TWO, token_s=6.0)
    pls = plan_epochs(p, Network(one_pass), epoch_s=600.0, horizon_s=1200.0, method="milp")
    assert [pl.solver for pl in pls] == ["milp->greedy"] * 2
    assert fallbacks(pls) == [(t, "MILP returned no point (status 1: time limit reached)")
                              for t in (0.0, 600.0)]
    assert fallbacks(plan_epochs(p, Network(one_pass), 600.0, 600.0, method="greedy")) == []


def test_link_volume_from_contact_windows():
    """Two stations in view of s0 over [100, 400) and [300, 600): one transmitter sends at
    1 MB/s for 500 s, two for 600 s; the ISL counts apart."""
    plan = toy_plan({(0, 2, KIND_GROUND): [(100.0, 400.0)], (0, 3, KIND_GROUND): [(300.0, 600.0)],
                     (0, 1, 1): [(0.0, 250.0)]}, n_sat=2, n_gs=2)
    assert link_volume_bytes(plan, "s0", 0.0, 600.0, concurrent=1) == pytest.approx(500e6)
    assert link_volume_bytes(plan, "s0", 0.0, 600.0) == pytest.approx(600e6)
    assert link_volume_bytes(plan, "s0", 350.0, 10_000.0, concurrent=1) == pytest.approx(250e6)
    assert link_volume_bytes(plan, "s0", 0.0, 600.0, isl=True) == pytest.approx(250e6)
    assert link_volume_bytes(plan, "s1", 0.0, 600.0) == 0.0  # no ground pass
    assert link_volume_bytes(plan, "s1", 0.0, 600.0, isl=True) == pytest.approx(250e6)


def test_isl_volume_is_charged_to_the_relay(one_pass):
    """s1 has no ground pass: its tokens relay through s0, charging s1's ISL and s0's downlink."""
    p = _problem(one_pass, [Demand("s1", ("a",), 0.02, TILES)], token_s=6.0,
                 link_volume_fraction=1.0)
    net = Network(one_pass)
    pl = optimise(p, net, 0.0)
    left = slack(p, net, pl)
    tok = 0.02 * EPOCH * 6e6
    assert left["isl:s1"] == pytest.approx(EPOCH * BYTES_S - tok)
    assert left["downlink:s0"] == pytest.approx(EPOCH * BYTES_S - tok)


@pytest.mark.parametrize(("option", "value", "expected"), [
    ("link_volume_fraction", 0.0, "None or in (0, 1]"),
    ("link_volume_fraction", 1.5, "None or in (0, 1]"),
    ("energy_budget_j", -1.0, "None or >= 0 J"),
    ("eclipse_energy_fraction", 1.2, "in [0, 1]"),
    ("migration_weight", -0.1, ">= 0"),
    ("epoch_s", 0.0, "> 0 s"),
    ("max_utilisation", 0.0, "in (0, 1]"),
])
def test_bad_option_values_name_the_option_and_range(one_pass, option, value, expected):
    with pytest.raises(ValueError, match=rf"PlacementProblem\.{option} must be "
                                         rf"{__import__('re').escape(expected)}, got {value}"):
        _problem(one_pass, TWO, token_s=6.0, **{option: value})


def test_only_hops_that_start_within_the_epoch_are_charged():
    """s0's pass opens at 700 s: in the epoch [0, 600) its tokens wait and charge nothing (the
    epoch offers no volume either); in [600, 1200) they charge the 500 s of pass it offers."""
    plan = toy_plan({(0, 1, KIND_GROUND): [(700.0, 10_000.0)]}, n_sat=1, n_gs=1)
    p = _problem(plan, [Demand("s0", ("a",), 0.01, TILES)], token_s=6.0,
                 link_volume_fraction=0.5)
    net = Network(plan)
    early = greedy(p, net, 0.0)
    assert early.routes[0][0] == [("g0", 1.0)] and "downlink:s0" not in slack(p, net, early)
    late = optimise(p, net, 600.0)
    assert late.routes[0][0] == [("g0", 1.0)]
    assert slack(p, net, late)["downlink:s0"] == pytest.approx(0.5 * 500e6 - 0.01 * EPOCH * 6e6)


def test_limits_hold_on_a_walker_plan_with_isls_and_two_segments(catalog, plan):
    """The fixture plan (2 x 10 Walker, +Grid ISLs, 3 stations), the two-segment encoder: with
    every limit on, neither method exceeds one and the MILP is not worse."""
    from research.serving.placement import default_nodes

    nodes = default_nodes(plan.satellites, plan.stations)
    demands = [Demand(s, ("landcover", "coarse", "retrieval"), r, tiles=2048)
               for s, r in zip(plan.satellites[:4], (0.4, 0.2, 0.1, 0.05), strict=True)]
    p = PlacementProblem.from_catalog(catalog, nodes, demands, memory_weight=10.0,
                                      link_volume_fraction=0.05, energy_budget_j=3000.0)
    net = Network(plan)
    for t in (0.0, 900.0):
        g, m = greedy(p, net, t), optimise(p, net, t)
        for pl in (g, m):
            assert pl.info["violated"] == [] and min(slack(p, net, pl).values()) > -1e-3, pl.info
        assert m.objective <= g.objective + 1e-9 and m.solver == "milp", m.info


def test_tokens_between_segments_charge_the_link_they_cross(one_pass):
    """Two segments; g0 has memory for the second only, so the first runs on s0 (1 s) and the
    tokens between them either go down (6 s, then the ground) or stay (15 s on board). 15 % of
    the downlink fits 62 % of the tokens: the MILP splits between stages, greedy cannot."""
    nodes = {"s0": Node("s0", JETSON, True), "s1": Node("s1", JETSON, True),
             "g0": Node("g0", get_device("a100"), False, PARAM["enc"] + PARAM["head"])}
    per_tile = JETSON.effective_flops / TILES
    p = PlacementProblem(
        nodes, [Demand("s0", ("a",), 0.04, TILES)],
        {"emb": PARAM["emb"], "enc0": PARAM["enc"], "enc1": PARAM["enc"],
         "head": PARAM["head"]},
        {"emb": 0, "enc0": 1.0 * per_tile, "enc1": BOARD_S * per_tile, "head": 0},
        {"emb": 0, "enc0": 0, "enc1": 0, "head": RESULT_BYTES // TILES}, {"rgb": "emb"},
        ["enc0", "enc1"], {"a": "head"}, int(6.0 * BYTES_S / TILES), epoch_s=EPOCH,
        link_volume_fraction=0.15, neighbourhood_hops=0)
    net = Network(one_pass)
    g, m = greedy(p, net, 0.0), optimise(p, net, 0.0)
    assert g.routes[0] == [[("s0", 1.0)], [("s0", 1.0)]]
    assert m.routes[0][0] == [("s0", 1.0)] and len(m.routes[0][1]) == 2
    for pl in (g, m):  # downlink use from closed forms: tokens between stages, then results
        flows = pl.flows[0][0]
        down = sum(s for a, b, s in flows if (a, b) == ("s0", "g0"))
        stays = dict(pl.routes[0][1]).get("s0", 0.0)
        use = 0.04 * EPOCH * (down * p.token_bytes * TILES + stays * RESULT_BYTES)
        assert use <= 0.15 * EPOCH * BYTES_S * (1 + 1e-6), (pl.solver, flows)
    assert m.info["binding"] == ["downlink:s0", "memory:g0"]  # g0 is full by construction
    assert g.objective - m.objective > 3.0
