"""Placement respects memory and compute limits; the MILP is never worse than greedy; the
simulator reports unmeetable deadlines as missed and queues FIFO at busy nodes."""

from __future__ import annotations

import pytest

from research.serving import placement as placement_module
from research.serving.placement import (
    Demand,
    PlacementProblem,
    default_nodes,
    greedy,
    list_placement_methods,
    optimise,
    placement_method,
    plan_epochs,
    register_placement,
)
from research.serving.routing import Network
from research.serving.simulator import (
    SimRequest,
    make_requests,
    microservice_routes,
    monolithic_routes,
    simulate,
)

TASKS = ("landcover", "coarse", "retrieval")


@pytest.fixture(scope="module")
def tight(catalog, plan):
    """Satellites hold the embedder plus ~one encoder segment; high load forces sharing."""
    probe = PlacementProblem.from_catalog(catalog, default_nodes(plan.satellites, plan.stations),
                                          [])
    mem = probe.param_bytes["embed_rgb"] + probe.param_bytes["encoder_0_1"] * 1.5
    nodes = default_nodes(plan.satellites, plan.stations, satellite_memory_bytes=mem)
    demands = [Demand(s, TASKS, rate, tiles=2048)
               for s, rate in zip(plan.satellites[:4], (0.4, 0.2, 0.1, 0.05), strict=True)]
    return PlacementProblem.from_catalog(catalog, nodes, demands, memory_weight=10.0)


def _check_limits(p, pl):
    mem = pl.memory_by_node(p.param_bytes)
    for n, b in mem.items():
        assert b <= p.nodes[n].memory + 1e-6, (n, b)
    load: dict[str, float] = {}
    for d in p.demands:
        e = p.embedders[d.modality]
        load[d.source] = load.get(d.source, 0.0) + d.rate_hz * d.tiles * p.flops[e]
    for d, stages in zip(p.demands, pl.routes, strict=True):
        for k, stage in enumerate(stages):
            assert abs(sum(s for _, s in stage) - 1) < 1e-6
            for n, share in stage:
                for s in p.stage_services(d, k):
                    assert n in pl.replicas[s]
                    load[n] = load.get(n, 0.0) + share * d.rate_hz * d.tiles * p.flops[s]
    for n, f in load.items():
        assert f <= p.max_utilisation * p.nodes[n].profile.effective_flops * (1 + 1e-6), n


def test_limits_respected_and_milp_not_worse(tight, plan):
    net = Network(plan)
    g = greedy(tight, net, 0.0)
    m = optimise(tight, net, 0.0)
    _check_limits(tight, g)
    _check_limits(tight, m)
    assert m.objective <= g.objective + 1e-9
    assert m.solver == "milp", m.info
    # the tight memory forbids the whole encoder on any one satellite
    for n in plan.satellites:
        assert not ({"encoder_0_1", "encoder_1_2"} <= {s for s, ns in m.replicas.items()
                                                        if n in ns})


def test_replanning_per_epoch(tight, plan):
    pls = plan_epochs(tight, Network(plan), epoch_s=1200, horizon_s=3600, method="greedy")
    assert [p.t for p in pls] == [0.0, 1200.0, 2400.0]
    with pytest.raises(ValueError, match=r"unknown placement method 'anneal'; expected one of "
                                         r"\['greedy', 'milp'\]"):
        plan_epochs(tight, Network(plan), 1200, 3600, method="anneal")


def test_placement_methods_are_registered_by_name(tight, plan):
    assert list_placement_methods() == ["greedy", "milp"]
    assert placement_method("greedy") is greedy and placement_method("milp") is optimise
    calls = []

    @register_placement("greedy-traced")
    def traced(p, net, t=0.0):
        calls.append(t)
        return greedy(p, net, t)

    try:
        pls = plan_epochs(tight, Network(plan), epoch_s=1800, horizon_s=3600,
                          method="greedy-traced")
        assert calls == [0.0, 1800.0] and [p.solver for p in pls] == ["greedy", "greedy"]
    finally:
        placement_module._METHODS.unregister("greedy-traced")


def test_unmeetable_deadline_is_missed_not_dropped(catalog, plan):
    nodes = default_nodes(plan.satellites, plan.stations)
    demands = [Demand(plan.satellites[0], TASKS, 0.02, tiles=8)]
    p = PlacementProblem.from_catalog(catalog, nodes, demands)
    net = Network(plan)
    reqs = make_requests(demands, 1800, deadline_s=1e-4, seed=1)
    # computes past the horizon: no contact left to deliver its result
    late = SimRequest("edge", 0, len(reqs), plan.satellites[0], TASKS, 3590.0, 3600.0, 2_000_000)
    reqs.append(late)
    out = simulate(net, nodes, reqs, microservice_routes(p, [optimise(p, net)], 3600, reqs),
                   "microservice")
    assert len(out) == len(reqs), [(o.latency_s, o.reason) for o in out if not o.missed]
    assert all(o.missed for o in out), [(o.latency_s, o.reason) for o in out if not o.missed]
    assert {o.reason for o in out[:-1]} == {"deadline"}
    assert out[-1].reason.startswith("unreachable")


def test_fifo_queue_at_busy_node(catalog, plan):
    nodes = default_nodes(plan.satellites, plan.stations)
    src = plan.satellites[0]
    demands = [Demand(src, TASKS, 1.0, tiles=4096)]
    p = PlacementProblem.from_catalog(catalog, nodes, demands)
    reqs = [SimRequest(f"r{i}", 0, i, src, TASKS, 10.0, 4000.0, 4096) for i in range(3)]
    out = simulate(Network(plan), nodes, reqs, monolithic_routes(p, reqs), "monolithic")
    q = [o.queue_s for o in out]
    assert q[0] == 0.0 and 0 < q[1] < q[2]
    assert out[1].onboard_compute_s == pytest.approx(out[0].onboard_compute_s)


def test_requests_follow_the_flows_between_stages():
    """A split demand's requests take routes the flows carry, in the planned shares."""
    from research.serving.placement import Placement

    routes = [[[("a", 0.5), ("b", 0.5)], [("x", 0.5), ("y", 0.5)], [("z", 1.0)]]]
    flows = [[[("a", "y", 0.5), ("b", "x", 0.5)], [("x", "z", 0.5), ("y", "z", 0.5)]]]
    pl = Placement(0.0, {}, routes, flows=flows)
    paths = [tuple(pl.path(0, i)) for i in range(400)]
    assert set(paths) == {("a", "y", "z"), ("b", "x", "z")}  # never a -> x, which no flow carries
    assert abs(paths.count(("a", "y", "z")) / 400 - 0.5) < 0.01
    free = Placement(0.0, {}, routes[:1])  # no flows: each stage by its own shares
    pairs = [tuple(free.path(0, i)[:2]) for i in range(400)]
    assert len(set(pairs)) == 4 and all(abs(pairs.count(p) / 400 - 0.25) < 0.03 for p in set(pairs))
