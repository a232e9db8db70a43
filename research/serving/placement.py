"""Placing service replicas on satellites and ground servers for a workload, per topology epoch.

The model (stated so the numbers can be judged):

* The modality embedder always runs on the capturing satellite (the pixels are there).
* Each demand (a source satellite asking for a set of tasks at some rate) sends its tokens
  through the encoder segments in order, each at one node, and its heads run where the last
  segment ran (features never travel; only results go down). A demand may split its traffic
  across nodes; requests follow the shares.
* Candidate nodes of a demand: its satellite, the satellites within ``neighbourhood_hops`` ISL
  hops at the epoch's start, and every ground station.
* Cost of a path: transfer times from :class:`~research.serving.routing.Network` (contact plan,
  at the epoch's start) plus compute times from the nodes' device profiles, plus delivery of the
  results to the ground. The objective is the rate-weighted mean of that latency plus
  ``memory_weight`` seconds per GiB of model weights on board (so memory is not free).
* Ground stations are one pool linked by the terrestrial network: a service placed on one
  station is replicated on all (weights on the ground are not priced), and requests run a ground
  stage at whichever station their bytes reach first.
* Limits: weights on a node fit its memory; the FLOP/s a node is asked for stay below
  ``max_utilisation`` of its sustained FLOP/s (queueing stays bounded).

:func:`greedy` assigns demands one at a time (highest rate first) to their cheapest feasible path;
:func:`optimise` solves the mixed-integer program with ``scipy.optimize.milp`` (HiGHS). Both are
scored by the same :func:`objective`. Topology changes are handled by re-planning each epoch
(:func:`plan_epochs`); migrating weights between epochs is not priced.

A placement method is a function ``(PlacementProblem, Network, t) -> Placement`` registered under
the name a serving config's ``placement.method`` uses, with one decorator::

    @register_placement("greedy")
    def greedy(p, net, t=0.0): ...

:func:`placement_method` finds one by name (an unknown name lists the registered ones,
:func:`list_placement_methods`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from devices import DeviceProfile, get_device
from research.registry import Registry
from research.serving.routing import GROUND, Network
from research.serving.tasks import Catalog

__all__ = ["Demand", "Node", "Placement", "PlacementMethod", "PlacementProblem", "greedy",
           "list_placement_methods", "objective", "optimise", "placement_method", "plan_epochs",
           "register_placement"]

GIB = 1024**3
UNREACHABLE_S = 1e6  # cost of a path that cannot complete within the plan (never chosen if avoidable)


@dataclass(frozen=True)
class Node:
    """A node that can host replicas: a satellite (on board) or a ground server."""

    name: str
    profile: DeviceProfile
    on_board: bool
    memory_bytes: float | None = None

    @property
    def memory(self) -> float:
        return self.profile.memory_bytes if self.memory_bytes is None else self.memory_bytes

    def seconds(self, flops: float) -> float:
        return self.profile.seconds(flops)


@dataclass(frozen=True)
class Demand:
    """Captures of one satellite: tasks asked together, captures per second, tiles per capture."""

    source: str
    tasks: tuple[str, ...]
    rate_hz: float
    tiles: int = 1
    modality: str = "rgb"


@dataclass
class PlacementProblem:
    """Everything placement needs; built from a catalog by :meth:`from_catalog`."""

    nodes: dict[str, Node]
    demands: list[Demand]
    param_bytes: dict[str, int]
    flops: dict[str, int]
    out_bytes: dict[str, int]
    embedders: dict[str, str]
    stages: list[str]
    heads: dict[str, str]
    token_bytes: int
    max_utilisation: float = 0.7
    memory_weight: float = 1.0
    neighbourhood_hops: int = 1

    @classmethod
    def from_catalog(cls, catalog: Catalog, nodes: Mapping[str, Node],
                     demands: Sequence[Demand], **kwargs) -> PlacementProblem:
        costs = {n: s.cost for n, s in catalog.services.items()}
        token_bytes = (costs[catalog.codec].out_bytes if catalog.codec
                       else costs[catalog.segments[0]].out_bytes)
        return cls(dict(nodes), list(demands), {n: c.param_bytes for n, c in costs.items()},
                   {n: c.flops for n, c in costs.items()},
                   {n: c.out_bytes for n, c in costs.items()}, dict(catalog.embedders),
                   list(catalog.segments), dict(catalog.heads), token_bytes, **kwargs)

    def stage_services(self, d: Demand, k: int) -> list[str]:
        """Services demand ``d`` runs at stage ``k`` (the last stage adds its heads)."""
        last = k == len(self.stages) - 1
        return [self.stages[k], *([self.heads[t] for t in d.tasks] if last else [])]

    def result_bytes(self, d: Demand) -> int:
        return d.tiles * sum(self.out_bytes[self.heads[t]] for t in d.tasks)

    def candidates(self, net: Network, d: Demand, t: float) -> list[str]:
        sats = [s for s in net.nearby(d.source, t, self.neighbourhood_hops) if s in self.nodes]
        return sats + [n for n, node in self.nodes.items() if not node.on_board]


@dataclass
class Placement:
    """Replicas and per-demand routes for one epoch.

    Attributes:
        replicas: service -> nodes holding a replica (embedders included).
        routes: per demand, per stage, ``[(node, share)]`` with shares summing to 1.
    """

    t: float
    replicas: dict[str, list[str]]
    routes: list[list[list[tuple[str, float]]]]
    objective: float = math.nan
    solver: str = ""
    info: dict = field(default_factory=dict)

    def path(self, demand: int, i: int) -> list[str]:
        """Stage nodes of the ``i``-th request of a demand (deterministic split by shares)."""
        u = (i * 0.6180339887498949) % 1.0
        out = []
        for stage in self.routes[demand]:
            acc = 0.0
            pick = stage[-1][0]
            for node, share in stage:
                acc += share
                if u < acc:
                    pick = node
                    break
            out.append(pick)
        return out

    def memory_by_node(self, param_bytes: Mapping[str, int]) -> dict[str, int]:
        mem: dict[str, int] = {}
        for s, nodes in self.replicas.items():
            for n in nodes:
                mem[n] = mem.get(n, 0) + param_bytes[s]
        return mem


def _embedder_load(p: PlacementProblem) -> tuple[dict[str, set[str]], dict[str, float]]:
    emb: dict[str, set[str]] = {}
    load: dict[str, float] = {}
    for d in p.demands:
        e = p.embedders[d.modality]
        emb.setdefault(e, set()).add(d.source)
        load[d.source] = load.get(d.source, 0.0) + d.rate_hz * d.tiles * p.flops[e]
    return emb, load


def _path_cost(p: PlacementProblem, net: Network, d: Demand, path: Sequence[str],
               t: float) -> float:
    tok = p.token_bytes * d.tiles
    cost, prev = 0.0, d.source
    for k, n in enumerate(path):
        cost += net.seconds(prev, n, tok, t)
        cost += p.nodes[n].seconds(d.tiles * sum(p.flops[s] for s in p.stage_services(d, k)))
        prev = n
    cost += net.seconds(prev, GROUND, p.result_bytes(d), t)
    return min(cost, UNREACHABLE_S)


def objective(p: PlacementProblem, net: Network, placement: Placement) -> float:
    """Rate-weighted mean path latency plus the price of the weights placed on board."""
    total = sum(d.rate_hz for d in p.demands) or 1.0
    lat = 0.0
    for d, stages in zip(p.demands, placement.routes, strict=True):
        for combo in itertools.product(*stages):
            share = math.prod(s for _, s in combo)
            lat += d.rate_hz / total * share * _path_cost(p, net, d, [n for n, _ in combo],
                                                          placement.t)
    onboard = sum(p.param_bytes[s] for s, nodes in placement.replicas.items()
                  for n in nodes if p.nodes[n].on_board and s not in p.embedders.values())
    return lat + p.memory_weight * onboard / GIB


def _finish(p: PlacementProblem, net: Network, t: float, replicas: dict[str, set[str]],
            routes: list, solver: str, info: dict) -> Placement:
    emb, _ = _embedder_load(p)
    ground = {n for n, node in p.nodes.items() if not node.on_board}
    for nodes in replicas.values():  # the ground is one pool: every station holds its replicas
        if nodes & ground:
            nodes |= ground
    reps = {s: sorted(n) for s, n in replicas.items() if n}
    reps.update({e: sorted(srcs) for e, srcs in emb.items()})
    pl = Placement(t, reps, routes, solver=solver, info=info)
    pl.objective = objective(p, net, pl)
    return pl


PlacementMethod = Callable[[PlacementProblem, Network, float], Placement]
"""Places replicas and routes for the epoch starting at ``t`` (scored by :func:`objective`)."""

_METHODS: Registry[PlacementMethod] = Registry("placement method")


def register_placement(name: str) -> Callable[[PlacementMethod], PlacementMethod]:
    """Decorator registering a :data:`PlacementMethod` under ``name`` (``placement.method``)."""
    return _METHODS.register(name)


def placement_method(name: str) -> PlacementMethod:
    """The placement method registered as ``name`` (ValueError naming the valid ones otherwise)."""
    return _METHODS.get(name)


def list_placement_methods() -> list[str]:
    """Every registered placement method, sorted."""
    return _METHODS.names()


@register_placement("greedy")
def greedy(p: PlacementProblem, net: Network, t: float = 0.0) -> Placement:
    """Highest-rate demand first, each to its cheapest path that fits (memory priced in)."""
    emb, load = _embedder_load(p)
    mem = {n: 0.0 for n in p.nodes}
    for e, srcs in emb.items():
        for s in srcs:
            mem[s] += p.param_bytes[e]
    replicas: dict[str, set[str]] = {}
    routes: list = [None] * len(p.demands)
    order = sorted(range(len(p.demands)), key=lambda i: -p.demands[i].rate_hz)
    total = sum(d.rate_hz for d in p.demands) or 1.0
    for i in order:
        d = p.demands[i]
        cands = p.candidates(net, d, t)
        best: tuple[float, tuple[str, ...]] | None = None
        for path in itertools.product(cands, repeat=len(p.stages)):
            new = {(s, n) for k, n in enumerate(path) for s in p.stage_services(d, k)
                   if n not in replicas.get(s, set())}
            need_mem: dict[str, float] = {}
            for s, n in new:
                need_mem[n] = need_mem.get(n, 0.0) + p.param_bytes[s]
            need_flops: dict[str, float] = {}
            for k, n in enumerate(path):
                for s in p.stage_services(d, k):
                    need_flops[n] = need_flops.get(n, 0.0) + d.rate_hz * d.tiles * p.flops[s]
            if any(mem[n] + m > p.nodes[n].memory for n, m in need_mem.items()):
                continue
            if any(load.get(n, 0.0) + f > p.max_utilisation * p.nodes[n].profile.effective_flops
                   for n, f in need_flops.items()):
                continue
            price = sum(m for n, m in need_mem.items() if p.nodes[n].on_board)
            c = d.rate_hz / total * _path_cost(p, net, d, path, t) + p.memory_weight * price / GIB
            if best is None or c < best[0]:
                best = (c, path)
        if best is None:
            raise RuntimeError(f"no feasible placement for demand {d} within memory/compute")
        for k, n in enumerate(best[1]):
            for s in p.stage_services(d, k):
                if n not in replicas.setdefault(s, set()):
                    replicas[s].add(n)
                    mem[n] += p.param_bytes[s]
                load[n] = load.get(n, 0.0) + d.rate_hz * d.tiles * p.flops[s]
        routes[i] = [[(n, 1.0)] for n in best[1]]
    return _finish(p, net, t, replicas, routes, "greedy", {})


@register_placement("milp")
def optimise(p: PlacementProblem, net: Network, t: float = 0.0, *, time_limit_s: float = 30.0,
             mip_rel_gap: float = 1e-6) -> Placement:
    """Solve the placement MILP (HiGHS via ``scipy.optimize.milp``).

    Variables: ``x[s, n]`` (a replica of service ``s`` on node ``n``, binary), ``y[d, k, n]`` (share
    of demand ``d`` whose stage ``k`` runs on ``n``) and ``z[d, k, n, n']`` (share moving from
    ``n`` at stage ``k`` to ``n'`` at stage ``k + 1``). If the solver stops early with a worse
    point than :func:`greedy`, the greedy placement is returned (``info["fallback"]``).
    """
    emb, load0 = _embedder_load(p)
    services = sorted({s for d in p.demands for k in range(len(p.stages))
                       for s in p.stage_services(d, k)})
    names = list(p.nodes)
    total = sum(d.rate_hz for d in p.demands) or 1.0
    cost: list[float] = []
    lo: list[float] = []
    hi: list[float] = []
    integral: list[int] = []

    def var(c: float, ub: float = 1.0, integer: bool = False) -> int:
        cost.append(c)
        lo.append(0.0)
        hi.append(ub)
        integral.append(int(integer))
        return len(cost) - 1

    x = {(s, n): var(p.memory_weight * p.param_bytes[s] / GIB * p.nodes[n].on_board + 1e-9,
                     integer=True) for s in services for n in names}
    rows: list[tuple[dict[int, float], float, float]] = []
    y: dict[tuple[int, int, str], int] = {}
    stage_flops: dict[tuple[int, int], float] = {}
    for i, d in enumerate(p.demands):
        w = d.rate_hz / total
        cands = p.candidates(net, d, t)
        tok = p.token_bytes * d.tiles
        m = len(p.stages)
        for k in range(m):
            stage_flops[i, k] = d.tiles * sum(p.flops[s] for s in p.stage_services(d, k))
            for n in cands:
                c = p.nodes[n].seconds(stage_flops[i, k])
                if k == 0:
                    c += net.seconds(d.source, n, tok, t)
                if k == m - 1:
                    c += net.seconds(n, GROUND, p.result_bytes(d), t)
                y[i, k, n] = var(w * min(c, UNREACHABLE_S))
                for s in p.stage_services(d, k):
                    rows.append(({y[i, k, n]: 1.0, x[s, n]: -1.0}, -np.inf, 0.0))
            rows.append(({y[i, k, n]: 1.0 for n in cands}, 1.0, 1.0))
        for k in range(m - 1):
            out_of = {n: {} for n in cands}
            into = {n: {} for n in cands}
            for a, b in itertools.product(cands, repeat=2):
                v = var(w * min(net.seconds(a, b, tok, t), UNREACHABLE_S))
                out_of[a][v] = 1.0
                into[b][v] = 1.0
            for n in cands:
                rows.append(({**out_of[n], y[i, k, n]: -1.0}, 0.0, 0.0))
                rows.append(({**into[n], y[i, k + 1, n]: -1.0}, 0.0, 0.0))
    for n in names:
        fixed_mem = sum(p.param_bytes[e] for e, srcs in emb.items() if n in srcs)
        rows.append(({x[s, n]: float(p.param_bytes[s]) for s in services}, -np.inf,
                     p.nodes[n].memory - fixed_mem))
        cap = p.max_utilisation * p.nodes[n].profile.effective_flops - load0.get(n, 0.0)
        terms = {v: p.demands[i].rate_hz * stage_flops[i, k] for (i, k, nn), v in y.items()
                 if nn == n}
        if terms:
            rows.append((terms, -np.inf, cap))
    data, ri, ci, lb, ub = [], [], [], [], []
    for r, (coef, a, b) in enumerate(rows):
        for c, v in coef.items():
            ri.append(r)
            ci.append(c)
            data.append(v)
        lb.append(a)
        ub.append(b)
    A = coo_matrix((data, (ri, ci)), shape=(len(rows), len(cost))).tocsr()
    res = milp(np.asarray(cost), constraints=LinearConstraint(A, lb, ub),
               integrality=np.asarray(integral), bounds=Bounds(lo, hi),
               options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap})
    base = greedy(p, net, t)
    info = {"status": int(res.status), "message": str(res.message), "variables": len(cost),
            "constraints": len(rows), "greedy_objective": base.objective}
    if res.x is None:
        return _fallback(base, info)
    sol = res.x
    routes = []
    for i, _ in enumerate(p.demands):
        stages = []
        for k in range(len(p.stages)):
            share = [(n, float(sol[v])) for (ii, kk, n), v in y.items()
                     if ii == i and kk == k and sol[v] > 1e-6]
            tot = sum(s for _, s in share)
            stages.append([(n, s / tot) for n, s in share])
        routes.append(stages)
    replicas: dict[str, set[str]] = {}  # keep replicas that carry traffic (x may idle at 1)
    for d, stages in zip(p.demands, routes, strict=True):
        for k, stage in enumerate(stages):
            for s in p.stage_services(d, k):
                replicas.setdefault(s, set()).update(n for n, _ in stage)
    pl = _finish(p, net, t, replicas, routes, "milp", info)
    if pl.objective > base.objective + 1e-9:
        return _fallback(base, {**info, "milp_objective": pl.objective})
    return pl


def _fallback(base: Placement, info: dict) -> Placement:
    base.info = {**info, "fallback": True}
    base.solver = "milp->greedy"
    return base


def plan_epochs(p: PlacementProblem, net: Network, epoch_s: float, horizon_s: float,
                method: str = "milp") -> list[Placement]:
    """Re-plan at the start of every epoch (the topology, hence the costs, change), with the
    placement method registered as ``method``."""
    solve = placement_method(method)
    return [solve(p, net, float(t)) for t in np.arange(0.0, horizon_s, epoch_s)]


def default_nodes(satellites: Sequence[str], stations: Sequence[str],
                  satellite_profile: str = "jetson_nano", ground_profile: str = "a100",
                  satellite_memory_bytes: float | None = None) -> dict[str, Node]:
    """Satellites with the on-board profile, stations with the ground server profile."""
    sat = get_device(satellite_profile).require_throughput()
    gnd = get_device(ground_profile).require_throughput()
    nodes = {s: Node(s, sat, True, satellite_memory_bytes) for s in satellites}
    nodes.update({g: Node(g, gnd, False) for g in stations})
    return nodes
