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
  ``memory_weight`` seconds per GiB of model weights on board (so memory is not free), plus
  ``migration_weight`` seconds per second of upload for weights moved onto a satellite that did
  not hold them in the previous epoch (``previous_replicas``; :func:`plan_epochs` passes it on).
  Weights are uploaded from the ground or from a satellite that held them (one earliest-arrival
  search); the first epoch's weights are preloaded (no previous placement, no migration).
* Ground stations are one pool linked by the terrestrial network: a service placed on one
  station is replicated on all (weights on the ground are not priced), and requests run a ground
  stage at whichever station their bytes reach first.
* Limits, shared by all demands in the epoch (``epoch_s`` long), each a named constraint
  ``"<kind>:<node>"``:

  - ``memory``: weights on a node (embedders included) fit its memory; a replica counts once
    however many demands use it.
  - ``compute``: the FLOP/s a node is asked for stay below ``max_utilisation`` of its sustained
    FLOP/s (queueing stays bounded).
  - ``downlink`` / ``isl`` (when ``link_volume_fraction`` is set): the bytes a satellite
    transmits to the ground / over its ISLs in the epoch stay below that fraction of the volume
    its contact windows offer in the epoch (integrated rate profile; at most
    ``downlink_transmitters`` / ``isl_terminals`` links at once, none with ``capacity:
    unlimited``). A demand at ``rate_hz`` charges ``rate_hz * epoch_s * bytes`` to every
    satellite that transmits its bytes on the what-if route, for the hops that start within the
    epoch (later hops belong to later epochs and are not charged). Station antennas shared by
    satellites, uplinks and weight uploads are not charged.
  - ``energy`` (when ``energy_budget_j`` is set): the joules a satellite spends on compute in the
    epoch (``power_w`` x compute seconds, embedders included; radio energy not counted) stay
    below ``energy_budget_j`` scaled by ``sunlit + eclipse_energy_fraction * (1 - sunlit)``,
    ``sunlit`` being the share of the epoch in sunlight. A value below 1 needs a plan built with
    eclipse (an error otherwise); at 1 eclipse is ignored.

:func:`greedy` assigns demands one at a time (highest rate first, each on one path) to their
cheapest path that fits what is left; :func:`optimise` solves the mixed-integer program with
``scipy.optimize.milp`` (HiGHS), where demands may split. Both use one feasibility model
(:class:`_Model`) and are scored by the same :func:`objective`; :func:`slack` and
:func:`binding_constraints` read any placement against it. When the MILP returns no point or a
worse one than greedy, :func:`optimise` returns greedy's with ``solver == "milp->greedy"`` and
``info["fallback_reason"]`` (:func:`fallbacks` counts them); :func:`placement_gap` compares the
two. Topology changes are handled by re-planning each epoch (:func:`plan_epochs`).

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
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_matrix

from devices import DeviceProfile, get_device
from research.orbit import ContactPlan, UnreachableError
from research.orbit.isl import KIND_GROUND
from research.registry import Registry
from research.serving.routing import GROUND, Network
from research.serving.tasks import Catalog

__all__ = ["Demand", "Node", "Placement", "PlacementMethod", "PlacementProblem",
           "binding_constraints", "fallbacks", "greedy", "link_volume_bytes",
           "list_placement_methods", "objective", "optimise", "placement_gap", "placement_method",
           "plan_epochs", "register_placement", "slack"]

GIB = 1024**3
UNREACHABLE_S = 1e6  # cost of a path that cannot complete within the plan (never chosen if avoidable)
REL_TOL = 1e-6  # relative slack under which a limit counts as binding (and over which, violated)


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


def _require(name: str, value: object, ok: bool, expected: str) -> None:
    if not ok:
        raise ValueError(f"PlacementProblem.{name} must be {expected}, got {value!r}")


@dataclass
class PlacementProblem:
    """Everything placement needs; built from a catalog by :meth:`from_catalog`.

    The limits and prices after ``neighbourhood_hops`` are off by default (see the module
    docstring): ``epoch_s`` (length of the epoch the volume and energy limits cover; set by
    :func:`plan_epochs`), ``link_volume_fraction`` (share of each satellite's contact-plan volume
    serving may use, ``None``: unlimited), ``energy_budget_j`` (compute joules per satellite per
    epoch, ``None``: unlimited), ``eclipse_energy_fraction`` (share of that budget available in
    eclipse), ``migration_weight`` (objective seconds per second of weight upload) and
    ``previous_replicas`` (the previous epoch's ``Placement.replicas``).
    ``modality_token_bytes``: bytes one tile's payload takes across the cut, per modality, as
    measured on real tiles (a learned codec's size depends on the content); ``token_bytes`` (the
    codec's output on one example) is used for modalities it does not name. ``codec``: the link
    codec's service; its encoder runs on the source after the embedder (:meth:`source_services`).
    """

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
    epoch_s: float = 900.0
    link_volume_fraction: float | None = None
    energy_budget_j: float | None = None
    eclipse_energy_fraction: float = 1.0
    migration_weight: float = 0.0
    previous_replicas: dict[str, list[str]] | None = None
    modality_token_bytes: dict[str, float] | None = None
    codec: str | None = None

    def __post_init__(self) -> None:
        _require("max_utilisation", self.max_utilisation, 0 < self.max_utilisation <= 1,
                 "in (0, 1]")
        _require("memory_weight", self.memory_weight, self.memory_weight >= 0, ">= 0")
        _require("neighbourhood_hops", self.neighbourhood_hops,
                 isinstance(self.neighbourhood_hops, int) and self.neighbourhood_hops >= 0,
                 "an integer >= 0")
        _require("epoch_s", self.epoch_s, self.epoch_s > 0, "> 0 s")
        f = self.link_volume_fraction
        _require("link_volume_fraction", f, f is None or 0 < f <= 1, "None or in (0, 1]")
        e = self.energy_budget_j
        _require("energy_budget_j", e, e is None or e >= 0, "None or >= 0 J")
        _require("eclipse_energy_fraction", self.eclipse_energy_fraction,
                 0 <= self.eclipse_energy_fraction <= 1, "in [0, 1]")
        _require("migration_weight", self.migration_weight, self.migration_weight >= 0, ">= 0")

    @classmethod
    def from_catalog(cls, catalog: Catalog, nodes: Mapping[str, Node],
                     demands: Sequence[Demand], **kwargs) -> PlacementProblem:
        costs = {n: s.cost for n, s in catalog.services.items()}
        token_bytes = costs[catalog.codec if catalog.codec
                            else next(iter(catalog.embedders.values()))].out_bytes
        return cls(dict(nodes), list(demands), {n: c.param_bytes for n, c in costs.items()},
                   {n: c.flops for n, c in costs.items()},
                   {n: c.out_bytes for n, c in costs.items()}, dict(catalog.embedders),
                   list(catalog.segments), dict(catalog.heads), token_bytes,
                   codec=catalog.codec, **kwargs)

    def source_services(self, modality: str) -> list[str]:
        """Services pinned to a capturing satellite: its embedder (or on-board front), then the
        codec that encodes what crosses the cut."""
        return [self.embedders[modality], *([self.codec] if self.codec else [])]

    def payload_bytes(self, modality: str, tiles: int) -> float:
        """Bytes ``tiles`` tiles of ``modality`` take across the cut (embedder -> stage 0)."""
        per_tile = (self.modality_token_bytes or {}).get(modality, self.token_bytes)
        return per_tile * tiles

    def stage_services(self, d: Demand, k: int) -> list[str]:
        """Services demand ``d`` runs at stage ``k``: the first decodes the codec's payloads
        (its decoder), the last adds its heads."""
        last = k == len(self.stages) - 1
        decode = [self.decoder] if k == 0 and self.decoder else []
        return [*decode, self.stages[k], *([self.heads[t] for t in d.tasks] if last else [])]

    @property
    def decoder(self) -> str | None:
        """The service that stands for the codec's decoder (``decode_<codec>``)."""
        return f"decode_{self.codec.removeprefix('codec_')}" if self.codec else None

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
        flows: per demand, per pair of consecutive stages, ``[(from, to, share)]``: how the
            shares move between stages (``None``: independent, the product of the stage shares).
        solver: the method that produced it (``"milp->greedy"``: the MILP fell back).
        info: solver details; ``binding`` and ``violated`` name limits with no slack / exceeded,
            ``fallback`` and ``fallback_reason`` say whether and why the MILP fell back.
    """

    t: float
    replicas: dict[str, list[str]]
    routes: list[list[list[tuple[str, float]]]]
    objective: float = math.nan
    solver: str = ""
    info: dict = field(default_factory=dict)
    flows: list[list[list[tuple[str, str, float]]]] | None = None

    def path(self, demand: int, i: int) -> list[str]:
        """Stage nodes of the ``i``-th request of a demand, deterministic and in proportion to
        the placement's split: stage 0 by its shares, each next stage by the flows out of the
        node chosen before it (so a request follows a route the MILP's flows carry; with no
        flows, by that stage's own shares). Low-discrepancy draws (golden-ratio multiples, one
        irrational per stage) keep the realised shares close to the planned ones (an error of
        order log(n) / n after n requests)."""
        stages = self.routes[demand]
        out = [_pick(stages[0], _draw(i, 0))]
        for k in range(1, len(stages)):
            options = stages[k]
            if self.flows is not None:
                here = [(b, share) for a, b, share in self.flows[demand][k - 1]
                        if a == out[-1] and share > 0]
                total = sum(share for _, share in here)
                if total > 0:
                    options = [(b, share / total) for b, share in here]
            out.append(_pick(options, _draw(i, k)))
        return out

    def memory_by_node(self, param_bytes: Mapping[str, int]) -> dict[str, int]:
        mem: dict[str, int] = {}
        for s, nodes in self.replicas.items():
            for n in nodes:
                mem[n] = mem.get(n, 0) + param_bytes[s]
        return mem

    def stage_flows(self, demand: int, k: int) -> list[tuple[str, str, float]]:
        """``[(from, to, share)]`` between stages ``k`` and ``k + 1`` of a demand."""
        if self.flows is not None:
            return self.flows[demand][k]
        a, b = self.routes[demand][k], self.routes[demand][k + 1]
        return [(n, m, s * r) for (n, s), (m, r) in itertools.product(a, b)]


_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def _draw(i: int, k: int) -> float:
    """The ``i``-th point of a low-discrepancy sequence in [0, 1), one sequence per stage ``k``
    (multiples of an irrational: the golden ratio for stage 0, then sqrt(2), sqrt(3), sqrt(5)...)."""
    alpha = 0.6180339887498949 if k == 0 else math.sqrt(_PRIMES[(k - 1) % len(_PRIMES)]) % 1.0
    return (i * alpha) % 1.0


def _pick(options: Sequence[tuple[str, float]], u: float) -> str:
    """The option whose cumulative share first exceeds ``u``."""
    acc = 0.0
    for node, share in options:
        acc += share
        if u < acc:
            return node
    return options[-1][0]


def link_volume_bytes(plan: ContactPlan, node: str, t0: float, t1: float, isl: bool = False,
                      concurrent: int | None = None) -> float:
    """Bytes ``node`` can transmit in ``[t0, t1)``: to the ground (``isl=False``) or over its
    ISLs, integrating the plan's rate profiles, using the ``concurrent`` fastest links at a time
    (``None``: all of them)."""
    profiles = []
    for link, fwd, _ in plan.adjacency(plan.index(node)):
        ground = bool(plan.link_kind[link] == KIND_GROUND)
        if ground == isl or (ground and not fwd):  # downlink: the satellite end of a ground link
            continue
        for w in range(int(plan.link_wbeg[link]), int(plan.link_wend[link])):
            if plan.win_end[w] > t0 and plan.win_start[w] < t1:
                bounds, rates, _, _ = plan.window_profile(w, fwd)
                profiles.append((bounds, rates))
    if not profiles:
        return 0.0
    cuts = np.unique(np.clip(np.concatenate([[t0, t1], *(b for b, _ in profiles)]), t0, t1))
    mid = (cuts[:-1] + cuts[1:]) / 2
    rate = np.zeros((len(profiles), len(mid)))
    for j, (bounds, rates) in enumerate(profiles):
        idx = np.searchsorted(bounds, mid, side="right") - 1
        inside = (idx >= 0) & (idx < len(rates))
        rate[j, inside] = rates[idx[inside]]
    if concurrent is not None and concurrent < len(profiles):
        rate = -np.sort(-rate, axis=0)[:concurrent]
    return float((rate.sum(axis=0) * np.diff(cuts)).sum() / 8.0)


def _add(acc: dict[str, float], usage: Mapping[str, float], share: float = 1.0) -> None:
    for k, v in usage.items():
        acc[k] = acc.get(k, 0.0) + share * v


class _Model:
    """The limits of one epoch and what each piece of a route uses of them: the one feasibility
    model greedy, the MILP and :func:`slack` share, so they cannot drift apart."""

    def __init__(self, p: PlacementProblem, net: Network, t: float) -> None:
        self.p, self.net, self.t = p, net, t
        self._cap: dict[str, float] = {}
        self._transfer: dict[tuple[str, str, float], dict[str, float]] = {}
        self._migration: dict[tuple[str, str], float] = {}
        self.fixed: dict[str, float] = {}  # embedders on their sources, whatever is placed
        self.fixed_memory: dict[str, float] = {}
        seen = set()
        for d in p.demands:
            pinned = p.source_services(d.modality)
            _add(self.fixed, self._services(d, pinned, d.source))
            for e in pinned:
                if (e, d.source) not in seen:
                    seen.add((e, d.source))
                    _add(self.fixed_memory, {f"memory:{d.source}": p.param_bytes[e]})

    def _services(self, d: Demand, services: Sequence[str], n: str) -> dict[str, float]:
        p = self.p
        flops = d.tiles * sum(p.flops[s] for s in services)
        out = {f"compute:{n}": d.rate_hz * flops}
        node = p.nodes[n]
        if p.energy_budget_j is not None and node.on_board:
            out[f"energy:{n}"] = d.rate_hz * p.epoch_s * node.profile.energy_j(flops)
        return out

    def stage(self, d: Demand, k: int, n: str) -> dict[str, float]:
        """Compute (FLOP/s) and energy (J per epoch) demand ``d``'s stage ``k`` uses at ``n``."""
        return self._services(d, self.p.stage_services(d, k), n)

    def transfer(self, d: Demand, a: str, b: str, n_bytes: float) -> dict[str, float]:
        """Link volume (bytes per epoch) demand ``d`` uses sending ``n_bytes`` from ``a`` to ``b``
        on the what-if route (the one :meth:`Network.seconds` prices)."""
        if self.p.link_volume_fraction is None or a == b:
            return {}
        key = (a, b, n_bytes)
        if key not in self._transfer:
            hop = self.net.transfer(a, b, n_bytes, self.t, cached=True)
            per: dict[str, float] = {}
            for h in hop.links if hop is not None else ():
                if h.t_start >= self.t + self.p.epoch_s or self.net.plan.is_station(h.src):
                    continue
                kind = "downlink" if h.kind == "ground" else "isl"
                _add(per, {f"{kind}:{h.src}": n_bytes})
            self._transfer[key] = per
        return {k: v * d.rate_hz * self.p.epoch_s for k, v in self._transfer[key].items()}

    def path(self, d: Demand, path: Sequence[str]) -> dict[str, float]:
        """Everything but memory that demand ``d`` uses on one path (share 1)."""
        p = self.p
        tok = p.payload_bytes(d.modality, d.tiles)
        out: dict[str, float] = {}
        prev = d.source
        for k, n in enumerate(path):
            _add(out, self.transfer(d, prev, n, tok))
            _add(out, self.stage(d, k, n))
            prev = n
        _add(out, self.transfer(d, prev, GROUND, p.result_bytes(d)))
        return out

    def cap(self, key: str) -> float:
        """The limit named ``key`` (``"<kind>:<node>"``)."""
        if key not in self._cap:
            kind, n = key.split(":", 1)
            p, plan, res = self.p, self.net.plan, self.net.resources
            if kind == "memory":
                c = p.nodes[n].memory
            elif kind == "compute":
                c = p.max_utilisation * p.nodes[n].profile.effective_flops
            elif kind in ("downlink", "isl"):
                unlimited = res.capacity == "unlimited"
                conc = None if unlimited else (res.isl_terminals if kind == "isl"
                                               else res.downlink_transmitters)
                c = p.link_volume_fraction * link_volume_bytes(
                    plan, n, self.t, self.t + p.epoch_s, isl=kind == "isl", concurrent=conc)
            elif kind == "energy":
                c = p.energy_budget_j * self._energy_scale(n)
            else:
                raise KeyError(f"unknown limit {key!r}")
            self._cap[key] = float(c)
        return self._cap[key]

    def _energy_scale(self, sat: str) -> float:
        f = self.p.eclipse_energy_fraction
        if f == 1.0:
            return 1.0
        plan = self.net.plan
        if plan.sunlit_bits is None:
            raise ValueError(f"PlacementProblem.eclipse_energy_fraction={f} needs a contact plan "
                             "built with eclipse (eclipse: true); use 1.0 to ignore eclipse")
        n = plan.grid.n_steps
        bits = np.unpackbits(plan.sunlit_bits[plan.index(sat)], count=n).astype(bool)
        k0 = min(int(self.t // plan.step_s), n - 1)
        k1 = max(k0 + 1, min(n, math.ceil((self.t + self.p.epoch_s) / plan.step_s)))
        sunlit = float(bits[k0:k1].mean())
        return sunlit + f * (1.0 - sunlit)

    def fits(self, used: Mapping[str, float], need: Mapping[str, float]) -> bool:
        """Whether ``need`` fits on top of ``used``."""
        for k, v in need.items():
            if v > 0:
                c = self.cap(k)
                if used.get(k, 0.0) + v > c + REL_TOL * abs(c):
                    return False
        return True

    def migration_s(self, s: str, n: str) -> float:
        """Seconds to upload ``s``'s weights to ``n`` from the ground or a previous holder."""
        key = (s, n)
        if key not in self._migration:
            plan = self.net.plan
            held = [m for m in (self.p.previous_replicas or {}).get(s, ())
                    if m in plan.nodes and not plan.is_station(m) and m != n]
            try:
                r = plan.transfer([*plan.stations, *held], n, self.p.param_bytes[s], self.t)
                sec = r.t_arrival - self.t
            except (UnreachableError, ValueError):
                sec = UNREACHABLE_S
            self._migration[key] = min(sec, UNREACHABLE_S)
        return self._migration[key]

    def replica_price(self, s: str, n: str) -> float:
        """Objective seconds of a replica of ``s`` on ``n``: memory on board and migration."""
        p = self.p
        if not p.nodes[n].on_board or s in p.embedders.values() or s == p.codec:
            return 0.0
        price = p.memory_weight * p.param_bytes[s] / GIB
        prev = p.previous_replicas
        if p.migration_weight > 0 and prev is not None and n not in prev.get(s, ()):
            price += p.migration_weight * self.migration_s(s, n)
        return price

    def usage(self, pl: Placement) -> dict[str, float]:
        """What a placement uses of every limit it touches."""
        p = self.p
        used = dict(self.fixed)
        _add(used, {f"memory:{n}": b for n, b in pl.memory_by_node(p.param_bytes).items()})
        for i, (d, stages) in enumerate(zip(p.demands, pl.routes, strict=True)):
            tok = p.payload_bytes(d.modality, d.tiles)
            last = len(stages) - 1
            for k, stage in enumerate(stages):
                for n, share in stage:
                    _add(used, self.stage(d, k, n), share)
                    if k == 0:
                        _add(used, self.transfer(d, d.source, n, tok), share)
                    if k == last:
                        _add(used, self.transfer(d, n, GROUND, p.result_bytes(d)), share)
                if k < last:
                    for a, b, share in pl.stage_flows(i, k):
                        _add(used, self.transfer(d, a, b, tok), share)
        return used


def _embedder_load(p: PlacementProblem) -> dict[str, set[str]]:
    emb: dict[str, set[str]] = {}
    for d in p.demands:
        for s in p.source_services(d.modality):
            emb.setdefault(s, set()).add(d.source)
    return emb


def _path_cost(p: PlacementProblem, net: Network, d: Demand, path: Sequence[str],
               t: float) -> float:
    tok = p.payload_bytes(d.modality, d.tiles)
    cost, prev = 0.0, d.source
    for k, n in enumerate(path):
        cost += net.seconds(prev, n, tok, t)
        cost += p.nodes[n].seconds(d.tiles * sum(p.flops[s] for s in p.stage_services(d, k)))
        prev = n
    cost += net.seconds(prev, GROUND, p.result_bytes(d), t)
    return min(cost, UNREACHABLE_S)


def _latency(p: PlacementProblem, net: Network, i: int, pl: Placement) -> float:
    """Expected latency of demand ``i``: over whole paths when no stage splits (or without
    flows), else piece by piece along the flows, each piece capped as the MILP prices it."""
    d, stages, t = p.demands[i], pl.routes[i], pl.t
    if pl.flows is None or all(len(st) == 1 for st in stages):
        return sum(math.prod(s for _, s in combo) * _path_cost(p, net, d, [n for n, _ in combo], t)
                   for combo in itertools.product(*stages))
    tok, last, lat = p.payload_bytes(d.modality, d.tiles), len(stages) - 1, 0.0
    for k, stage in enumerate(stages):
        flops = d.tiles * sum(p.flops[s] for s in p.stage_services(d, k))
        for n, share in stage:
            c = p.nodes[n].seconds(flops)
            if k == 0:
                c += net.seconds(d.source, n, tok, t)
            if k == last:
                c += net.seconds(n, GROUND, p.result_bytes(d), t)
            lat += share * min(c, UNREACHABLE_S)
        if k < last:
            lat += sum(share * min(net.seconds(a, b, tok, t), UNREACHABLE_S)
                       for a, b, share in pl.stage_flows(i, k))
    return lat


def _unreachable(p: PlacementProblem, net: Network, i: int, pl: Placement) -> bool:
    """Whether some share of demand ``i`` takes a transfer that cannot complete in the plan."""
    d, stages, t = p.demands[i], pl.routes[i], pl.t
    tok, last = p.payload_bytes(d.modality, d.tiles), len(stages) - 1
    return (any(math.isinf(net.seconds(d.source, n, tok, t)) for n, _ in stages[0])
            or any(math.isinf(net.seconds(n, GROUND, p.result_bytes(d), t)) for n, _ in stages[-1])
            or any(math.isinf(net.seconds(a, b, tok, t))
                   for k in range(last) for a, b, s in pl.stage_flows(i, k) if s > 0))


def _objective(p: PlacementProblem, net: Network, placement: Placement, model: _Model) -> float:
    total = sum(d.rate_hz for d in p.demands) or 1.0
    lat = sum(d.rate_hz / total * _latency(p, net, i, placement)
              for i, d in enumerate(p.demands))
    return lat + sum(model.replica_price(s, n) for s, nodes in placement.replicas.items()
                     for n in nodes)


def objective(p: PlacementProblem, net: Network, placement: Placement) -> float:
    """Rate-weighted mean path latency plus the price of the weights placed (and moved) on board.

    A path that cannot complete within the plan costs ``UNREACHABLE_S``: with tight limits a
    demand may be left no other (``info["unreachable"]`` lists such demands)."""
    return _objective(p, net, placement, _Model(p, net, placement.t))


def slack(p: PlacementProblem, net: Network, placement: Placement) -> dict[str, float]:
    """Limit minus use for every limit the placement touches (negative: violated), by name."""
    m = _Model(p, net, placement.t)
    return {k: m.cap(k) - v for k, v in m.usage(placement).items()}


def _named(model: _Model, placement: Placement) -> tuple[list[str], list[str]]:
    used = model.usage(placement)
    binding, violated = [], []
    for k, v in sorted(used.items()):
        c = model.cap(k)
        if v > 0 and c - v <= REL_TOL * abs(c):
            (violated if c - v < -REL_TOL * abs(c) else binding).append(k)
    return binding, violated


def binding_constraints(p: PlacementProblem, net: Network, placement: Placement) -> list[str]:
    """Names (``"<kind>:<node>"``) of the limits the placement uses to within ``REL_TOL``."""
    return _named(_Model(p, net, placement.t), placement)[0]


def _finish(p: PlacementProblem, net: Network, t: float, replicas: dict[str, set[str]],
            routes: list, solver: str, info: dict, model: _Model,
            flows: list | None = None) -> Placement:
    emb = _embedder_load(p)
    ground = {n for n, node in p.nodes.items() if not node.on_board}
    for nodes in replicas.values():  # the ground is one pool: every station holds its replicas
        if nodes & ground:
            nodes |= ground
    reps = {s: sorted(n) for s, n in replicas.items() if n}
    reps.update({e: sorted(srcs) for e, srcs in emb.items()})
    pl = Placement(t, reps, routes, solver=solver, info=dict(info), flows=flows)
    pl.objective = _objective(p, net, pl, model)
    pl.info["binding"], pl.info["violated"] = _named(model, pl)
    pl.info["unreachable"] = [i for i in range(len(p.demands)) if _unreachable(p, net, i, pl)]
    if p.previous_replicas is not None:
        pl.info["migrations"] = sorted(
            f"{s}@{n}" for s, nodes in reps.items() for n in nodes
            if p.nodes[n].on_board and n not in p.previous_replicas.get(s, ()))
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
    """Highest-rate demand first, each to its cheapest path that fits what earlier demands left
    (memory and migration priced in); RuntimeError when a demand fits nowhere."""
    model = _Model(p, net, t)
    used = dict(model.fixed)
    _add(used, model.fixed_memory)
    replicas: dict[str, set[str]] = {}
    routes: list = [None] * len(p.demands)
    order = sorted(range(len(p.demands)), key=lambda i: -p.demands[i].rate_hz)
    total = sum(d.rate_hz for d in p.demands) or 1.0
    for i in order:
        d = p.demands[i]
        cands = p.candidates(net, d, t)
        best: tuple[float, tuple[str, ...], dict[str, float]] | None = None
        for path in itertools.product(cands, repeat=len(p.stages)):
            new = {(s, n) for k, n in enumerate(path) for s in p.stage_services(d, k)
                   if n not in replicas.get(s, set())}
            need = model.path(d, path)
            for s, n in new:
                _add(need, {f"memory:{n}": p.param_bytes[s]})
            if not model.fits(used, need):
                continue
            c = (d.rate_hz / total * _path_cost(p, net, d, path, t)
                 + sum(model.replica_price(s, n) for s, n in new))
            if best is None or c < best[0]:
                best = (c, path, need)
        if best is None:
            raise RuntimeError(f"greedy: no path for demand {d} at t={t:g} s fits the limits "
                               "left by higher-rate demands (memory, compute, link volume, "
                               "energy)")
        for k, n in enumerate(best[1]):
            for s in p.stage_services(d, k):
                replicas.setdefault(s, set()).add(n)
        _add(used, best[2])
        routes[i] = [[(n, 1.0)] for n in best[1]]
    flows = [[[(a, b, 1.0)] for (a, _), (b, _) in itertools.pairwise(st[0] for st in route)]
             for route in routes]
    return _finish(p, net, t, replicas, routes, "greedy", {}, model, flows)


@register_placement("milp")
def optimise(p: PlacementProblem, net: Network, t: float = 0.0, *, time_limit_s: float = 30.0,
             mip_rel_gap: float = 1e-6) -> Placement:
    """Solve the placement MILP (HiGHS via ``scipy.optimize.milp``).

    Variables: ``x[s, n]`` (a replica of service ``s`` on node ``n``, binary), ``y[d, k, n]`` (share
    of demand ``d`` whose stage ``k`` runs on ``n``) and ``z[d, k, n, n']`` (share moving from
    ``n`` at stage ``k`` to ``n'`` at stage ``k + 1``). Every limit is one row whose coefficients
    are what :class:`_Model` charges greedy. If the solver returns no point, or one worse than
    :func:`greedy`'s, the greedy placement is returned with ``solver == "milp->greedy"`` and
    ``info["fallback_reason"]``; if greedy finds nothing (a demand must split to fit), the MILP
    point stands and ``info["greedy_error"]`` says why.
    """
    model = _Model(p, net, t)
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

    x = {(s, n): var(model.replica_price(s, n) + 1e-9, integer=True)
         for s in services for n in names}
    rows: list[tuple[dict[int, float], float, float]] = []
    uses: dict[str, dict[int, float]] = {}  # limit -> {variable: use at share 1}

    def charge(v: int, usage: Mapping[str, float]) -> None:
        for key, u in usage.items():
            row = uses.setdefault(key, {})
            row[v] = row.get(v, 0.0) + u

    y: dict[tuple[int, int, str], int] = {}
    z: dict[tuple[int, int, str, str], int] = {}
    for i, d in enumerate(p.demands):
        w = d.rate_hz / total
        cands = p.candidates(net, d, t)
        tok = p.payload_bytes(d.modality, d.tiles)
        m = len(p.stages)
        for k in range(m):
            flops = d.tiles * sum(p.flops[s] for s in p.stage_services(d, k))
            for n in cands:
                c = p.nodes[n].seconds(flops)
                if k == 0:
                    c += net.seconds(d.source, n, tok, t)
                if k == m - 1:
                    c += net.seconds(n, GROUND, p.result_bytes(d), t)
                y[i, k, n] = var(w * min(c, UNREACHABLE_S))
                charge(y[i, k, n], model.stage(d, k, n))
                if k == 0:
                    charge(y[i, k, n], model.transfer(d, d.source, n, tok))
                if k == m - 1:
                    charge(y[i, k, n], model.transfer(d, n, GROUND, p.result_bytes(d)))
                for s in p.stage_services(d, k):
                    rows.append(({y[i, k, n]: 1.0, x[s, n]: -1.0}, -np.inf, 0.0))
            rows.append(({y[i, k, n]: 1.0 for n in cands}, 1.0, 1.0))
        for k in range(m - 1):
            out_of = {n: {} for n in cands}
            into = {n: {} for n in cands}
            for a, b in itertools.product(cands, repeat=2):
                v = z[i, k, a, b] = var(w * min(net.seconds(a, b, tok, t), UNREACHABLE_S))
                charge(v, model.transfer(d, a, b, tok))
                out_of[a][v] = 1.0
                into[b][v] = 1.0
            for n in cands:
                rows.append(({**out_of[n], y[i, k, n]: -1.0}, 0.0, 0.0))
                rows.append(({**into[n], y[i, k + 1, n]: -1.0}, 0.0, 0.0))
    for n in names:
        rows.append(({x[s, n]: float(p.param_bytes[s]) for s in services}, -np.inf,
                     p.nodes[n].memory - model.fixed_memory.get(f"memory:{n}", 0.0)))
        key = f"compute:{n}"
        if uses.get(key):
            rows.append((uses[key], -np.inf, model.cap(key) - model.fixed.get(key, 0.0)))
    for key in sorted(k for k in uses if not k.startswith(("compute:", "memory:"))):
        rows.append((uses[key], -np.inf, model.cap(key) - model.fixed.get(key, 0.0)))
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
    info: dict = {"status": int(res.status), "message": str(res.message),
                  "variables": len(cost), "constraints": len(rows), "fallback": False}
    try:
        base: Placement | None = greedy(p, net, t)
        info["greedy_objective"] = base.objective
    except RuntimeError as err:
        base = None
        info["greedy_objective"] = math.inf
        info["greedy_error"] = str(err)
    if res.x is None:
        why = f"MILP returned no point (status {res.status}: {res.message})"
        if base is None:
            raise RuntimeError(f"no feasible placement at t={t:g} s: {why}; "
                               f"{info['greedy_error']}")
        return _fallback(base, info, why)
    sol = res.x
    routes, flows = [], []
    for i, _ in enumerate(p.demands):
        stages = []
        for k in range(len(p.stages)):
            share = [(n, float(sol[v])) for (ii, kk, n), v in y.items()
                     if ii == i and kk == k and sol[v] > 1e-6]
            tot = sum(s for _, s in share)
            stages.append([(n, s / tot) for n, s in share])
        routes.append(stages)
        moves = []
        for k in range(len(p.stages) - 1):
            pairs = [(a, b, float(sol[v])) for (ii, kk, a, b), v in z.items()
                     if ii == i and kk == k and sol[v] > 1e-6]
            tot = sum(s for *_, s in pairs)
            moves.append([(a, b, s / tot) for a, b, s in pairs])
        flows.append(moves)
    replicas: dict[str, set[str]] = {}  # keep replicas that carry traffic (x may idle at 1)
    for d, stages in zip(p.demands, routes, strict=True):
        for k, stage in enumerate(stages):
            for s in p.stage_services(d, k):
                replicas.setdefault(s, set()).update(n for n, _ in stage)
    pl = _finish(p, net, t, replicas, routes, "milp", info, model, flows)
    if base is not None and pl.objective > base.objective + 1e-9:
        return _fallback(base, {**info, "milp_objective": pl.objective},
                         f"MILP objective {pl.objective:.6g} worse than greedy's "
                         f"{base.objective:.6g} (status {res.status}: {res.message})")
    return pl


def _fallback(base: Placement, info: dict, reason: str) -> Placement:
    base.info = {**info, **base.info, "fallback": True, "fallback_reason": reason}
    base.solver = "milp->greedy"
    return base


def fallbacks(placements: Sequence[Placement]) -> list[tuple[float, str]]:
    """``(t, reason)`` of every epoch where the MILP fell back to greedy (report, never hide)."""
    return [(pl.t, str(pl.info.get("fallback_reason", ""))) for pl in placements
            if pl.info.get("fallback")]


def placement_gap(p: PlacementProblem, net: Network, t: float = 0.0) -> dict:
    """Greedy against the MILP at one epoch: objectives, the gap (greedy minus MILP; ``inf``
    when greedy finds nothing), whether the MILP fell back, and the limits that bind."""
    m = optimise(p, net, t)
    g_obj = m.info.get("greedy_objective", math.inf)
    if m.solver == "milp->greedy":
        g_binding = m.info["binding"]
    else:
        g_binding = [] if math.isinf(g_obj) else binding_constraints(p, net, greedy(p, net, t))
    return {"t": t, "greedy_objective": g_obj, "milp_objective": m.objective,
            "gap_s": g_obj - m.objective,
            "gap_rel": (g_obj - m.objective) / g_obj if g_obj and math.isfinite(g_obj) else
            math.inf, "solver": m.solver, "fallback_reason": m.info.get("fallback_reason", ""),
            "greedy_error": m.info.get("greedy_error", ""), "binding_milp": m.info["binding"],
            "binding_greedy": g_binding}


def plan_epochs(p: PlacementProblem, net: Network, epoch_s: float, horizon_s: float,
                method: str = "milp") -> list[Placement]:
    """Re-plan at the start of every epoch (the topology, hence the costs, change), with the
    placement method registered as ``method``; each epoch sees the previous one's replicas (for
    the migration price) and ``epoch_s`` (for the volume and energy limits)."""
    solve = placement_method(method)
    out: list[Placement] = []
    prev = p.previous_replicas
    for t in np.arange(0.0, horizon_s, epoch_s):
        pl = solve(replace(p, epoch_s=epoch_s, previous_replicas=prev), net, float(t))
        out.append(pl)
        prev = pl.replicas
    return out


def default_nodes(satellites: Sequence[str], stations: Sequence[str],
                  satellite_profile: str = "jetson_nano", ground_profile: str = "a100",
                  satellite_memory_bytes: float | None = None) -> dict[str, Node]:
    """Satellites with the on-board profile, stations with the ground server profile."""
    sat = get_device(satellite_profile).require_throughput()
    gnd = get_device(ground_profile).require_throughput()
    nodes = {s: Node(s, sat, True, satellite_memory_bytes) for s in satellites}
    nodes.update({g: Node(g, gnd, False) for g in stations})
    return nodes
