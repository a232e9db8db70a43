"""One multi-task workload through every scheme: microservices against the baselines.

Schemes (same requests, same network resources, each on a fresh network state):

* ``microservice``: placed replicas (embedder on board, the rest where placement puts it);
* ``onboard_shared``: the strong on-board baseline, one shared encoder with every task head on
  each capturing satellite (only results go down);
* ``monolithic``: the weak one, a full model per task on board (kept for reference);
* ``ground_<format>``: tiles downlinked raw or in an image format (JPEG...) of measured size,
  the whole model on the ground;
* one per ``policies`` entry (named by its label, :mod:`research.serving.policy`): each request
  takes the route of the scheme the policy picks when it is captured.

Used by ``satedge serve`` and :mod:`research.serving.figure` so both report the same numbers.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from research.serving.placement import (
    Demand,
    Node,
    Placement,
    PlacementProblem,
    plan_epochs,
)
from research.serving.policy import PolicyRouter
from research.serving.routing import Network
from research.serving.simulator import (
    Outcome,
    ground_routes,
    make_requests,
    microservice_routes,
    monolithic_routes,
    onboard_shared_routes,
    simulate,
    summarise,
)
from research.serving.tasks import Catalog

__all__ = ["Comparison", "compare_schemes", "onboard_shared_memory", "onboard_shared_services",
           "policy_memory"]


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


def onboard_shared_services(p: PlacementProblem) -> dict[str, set[str]]:
    """Services on each source: the embedders of its modalities, the encoder once, its heads."""
    parts: dict[str, set[str]] = {}
    for d in p.demands:
        parts.setdefault(d.source, set()).update(
            (p.embedders[d.modality], *p.stages, *(p.heads[t] for t in d.tasks)))
    return parts


def onboard_shared_memory(p: PlacementProblem) -> dict[str, int]:
    """Weights on each source (:func:`onboard_shared_services`)."""
    return _bytes(onboard_shared_services(p), p)


def _bytes(services: Mapping[str, set[str]], p: PlacementProblem) -> dict[str, int]:
    return {n: sum(p.param_bytes[s] for s in names) for n, names in services.items()}


def policy_memory(p: PlacementProblem, placements: Sequence[Placement], nodes: dict[str, Node],
                  used: set[str]) -> dict[str, int]:
    """On-board weights a policy needs for the options it ``used``: per node, the union of their
    services (the placed replicas of the epoch that holds most, the shared chain on sources)."""
    best: dict[str, int] = {}
    for pl in placements:
        held: dict[str, set[str]] = {}
        if "microservice" in used:
            for s, where in pl.replicas.items():
                for n in where:
                    if nodes[n].on_board:
                        held.setdefault(n, set()).add(s)
        if "onboard_shared" in used:
            for n, names in onboard_shared_services(p).items():
                held.setdefault(n, set()).update(names)
        mem = _bytes(held, p)
        if sum(mem.values()) > sum(best.values()):
            best = mem
    return best


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
                    image_tile_bytes: Mapping[str, Mapping[str, float]] | None = None,
                    policies: Sequence[Mapping] = (),
                    option_accuracy: Mapping[str, Mapping[str, float]] | None = None,
                    **placement_options) -> Comparison:
    """Place, route and simulate the same requests under every scheme.

    Placement uses what-if estimates on an empty network; each scheme is then simulated on a
    fresh network state (``net.new_state()``: ``net.resources``), so schemes share nothing.
    ``image_tile_bytes`` maps an image format (``"jpeg"``) to measured bytes per tile by
    modality; each adds a ``ground_<format>`` scheme. ``placement_options`` are the prices and
    limits of :class:`~research.serving.placement.PlacementProblem` (``memory_weight``,
    ``link_volume_fraction``...). ``policies``: ``{kind: ..., <params>}`` mappings
    (:mod:`research.opt`), each a further scheme choosing per request among the others
    (:class:`~research.serving.policy.PolicyRouter`); they need ``option_accuracy``, the expected
    land-cover accuracy per modality and scheme.
    """
    tic = time.perf_counter()
    problem = PlacementProblem.from_catalog(catalog, nodes, demands, epoch_s=epoch_s,
                                            **placement_options)
    placements = plan_epochs(problem, net, epoch_s, horizon_s, method)
    timings = {"placement_s": time.perf_counter() - tic}
    requests = make_requests(demands, horizon_s, deadline_s, seed)
    routes = {
        "microservice": microservice_routes(problem, placements, epoch_s, requests),
        "onboard_shared": onboard_shared_routes(problem, requests),
        "monolithic": monolithic_routes(problem, requests),
        "ground_raw": ground_routes(problem, requests),
    }
    for fmt, per_tile in (image_tile_bytes or {}).items():
        routes[f"ground_{fmt}"] = ground_routes(problem, requests, per_tile)
    micro_mem = max((_onboard(pl.memory_by_node(problem.param_bytes), nodes) for pl in placements),
                    key=lambda m: sum(m.values()))
    memory = {"microservice": micro_mem, "onboard_shared": onboard_shared_memory(problem),
              "monolithic": monolithic_memory(problem)}
    if policies and option_accuracy is None:
        raise ValueError("compare_schemes: policies need option_accuracy (expected land-cover "
                         "accuracy per modality and scheme)")
    choosers = {}
    for spec in policies:
        router = PolicyRouter(spec, problem, requests, routes, option_accuracy or {}, net.plan,
                              nodes, net.resources, deadline_s)
        name = router.label if router.label not in routes else f"policy:{router.label}"
        if name in choosers:
            raise ValueError(f"two policies are both labelled {router.label!r}; give them "
                             "different parameters")
        choosers[name] = router
    summaries, outcomes, network_use = {}, [], {}
    for scheme in [*routes, *choosers]:
        tic = time.perf_counter()
        state = net.new_state()
        res = simulate(net, nodes, requests, choosers.get(scheme) or routes[scheme], scheme, state)
        timings[f"simulate_{scheme}_s"] = time.perf_counter() - tic
        if scheme in choosers:
            mix = Counter(o.option for o in res)
            memory[scheme] = policy_memory(problem, placements, nodes, set(mix))
        summaries[scheme] = summarise(res, memory.get(scheme, {}))
        if scheme in choosers:
            summaries[scheme]["policy"] = choosers[scheme].describe
            summaries[scheme]["option_mix"] = {k: mix[k] / len(res) for k in sorted(mix)}
        network_use[scheme] = state.summary()
        outcomes.extend(res)
    return Comparison(summaries, outcomes, placements, timings, network_use)
