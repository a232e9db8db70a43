"""One multi-task workload through three schemes: microservices, monolithic on board, ground.

Used by ``satedge serve`` and :mod:`research.serving.figure` so both report the same numbers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from research.serving.placement import (
    Demand,
    Node,
    Placement,
    PlacementProblem,
    plan_epochs,
)
from research.serving.routing import Network
from research.serving.simulator import (
    Outcome,
    ground_routes,
    make_requests,
    microservice_routes,
    monolithic_routes,
    simulate,
    summarise,
)
from research.serving.tasks import Catalog

__all__ = ["SCHEMES", "Comparison", "compare_schemes"]

SCHEMES = ("microservice", "monolithic", "ground")


@dataclass
class Comparison:
    """Per-scheme summaries, every request's outcome, the placements used and, per scheme, what
    its network carried (:meth:`research.orbit.network.NetworkState.summary`)."""

    summaries: dict[str, dict]
    outcomes: list[Outcome]
    placements: list[Placement]
    timings_s: dict[str, float]
    network_use: dict[str, dict] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        return [o.row() for o in self.outcomes]


def _onboard(memory: dict[str, int], nodes: dict[str, Node]) -> dict[str, int]:
    return {n: b for n, b in memory.items() if nodes[n].on_board}


def monolithic_memory(p: PlacementProblem) -> dict[str, int]:
    """Weights on each source: one full model (embedder, encoder, head) per task it serves."""
    mem: dict[str, int] = {}
    tasks: dict[str, set[tuple[str, str]]] = {}
    for d in p.demands:
        tasks.setdefault(d.source, set()).update((t, d.modality) for t in d.tasks)
    for src, pairs in tasks.items():
        mem[src] = sum(p.param_bytes[s] for t, m in pairs
                       for s in (p.embedders[m], *p.stages, p.heads[t]))
    return mem


def compare_schemes(catalog: Catalog, net: Network, nodes: dict[str, Node],
                    demands: Sequence[Demand], *, horizon_s: float, epoch_s: float,
                    deadline_s: float, seed: int = 0, method: str = "milp",
                    memory_weight: float = 1.0, max_utilisation: float = 0.7,
                    neighbourhood_hops: int = 1) -> Comparison:
    """Place, route and simulate the same requests under every scheme.

    Placement uses what-if estimates on an empty network; each scheme is then simulated on a
    fresh network state (``net.new_state()``: ``net.resources``), so schemes share nothing.
    """
    tic = time.perf_counter()
    problem = PlacementProblem.from_catalog(catalog, nodes, demands, memory_weight=memory_weight,
                                            max_utilisation=max_utilisation,
                                            neighbourhood_hops=neighbourhood_hops)
    placements = plan_epochs(problem, net, epoch_s, horizon_s, method)
    timings = {"placement_s": time.perf_counter() - tic}
    requests = make_requests(demands, horizon_s, deadline_s, seed)
    routes = {
        "microservice": microservice_routes(problem, placements, epoch_s, requests),
        "monolithic": monolithic_routes(problem, requests),
        "ground": ground_routes(problem, requests),
    }
    micro_mem = max((_onboard(pl.memory_by_node(problem.param_bytes), nodes) for pl in placements),
                    key=lambda m: sum(m.values()))
    memory = {"microservice": micro_mem, "monolithic": monolithic_memory(problem), "ground": {}}
    summaries, outcomes, network_use = {}, [], {}
    for scheme in SCHEMES:
        tic = time.perf_counter()
        state = net.new_state()
        res = simulate(net, nodes, requests, routes[scheme], scheme, state)
        timings[f"simulate_{scheme}_s"] = time.perf_counter() - tic
        summaries[scheme] = summarise(res, memory[scheme])
        network_use[scheme] = state.summary()
        outcomes.extend(res)
    return Comparison(summaries, outcomes, placements, timings, network_use)
