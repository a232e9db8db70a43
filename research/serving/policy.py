"""Per-request policies in serving: which route answers each capture, chosen as it is captured.

The serving schemes (:mod:`research.serving.compare`) are the **options** of the per-capture
policies of :mod:`research.opt` (``policy: {kind: fixed | greedy | priced | oracle, ...}``, the same
registry and parameters as an evaluation scenario): the placed microservices (embedder and codec
on board, the rest where placement puts it), the shared encoder on board, and the tiles sent down
raw or in a measured image format. ``monolithic`` is not an option (it costs more than
``onboard_shared`` for the same answer).

Each option is described to the policy per tile, for the demand's modality and tasks: its
expected land-cover accuracy (measured for that scheme on the held-out evaluation tiles), and,
read from the option's own routes (the placements' for the microservices), the bytes that leave
the satellite and the FLOPs on it before they leave and after (the mean over the group's
requests). Requests carry no pixels, so a policy's reported accuracy is the same expectation
weighted by its choices (modelled, not measured per request).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from research.opt import (
    Option,
    OptionBank,
    Policy,
    PolicyContext,
    UnreachableFloorError,
    build_policy,
)
from research.orbit.contact_plan import ContactPlan
from research.orbit.network import NetworkResources
from research.serving.placement import Node, PlacementProblem
from research.serving.routing import GROUND
from research.serving.simulator import SimRequest, Step

__all__ = ["PolicyRouter", "policy_options", "route_numbers", "serving_option_bank"]


def policy_options(schemes: Sequence[str]) -> list[str]:
    """The schemes a policy may choose among (every scheme but ``monolithic``)."""
    return [s for s in schemes if s != "monolithic"]


def route_numbers(route: Sequence[Step], source: str) -> tuple[float, float, float]:
    """``(bytes that leave the satellite, FLOPs on it before they leave, FLOPs after)`` of one
    route, as :func:`~research.serving.simulator.simulate` charges them: the first step whose
    next node (the ground after the last) is not the capturing satellite sends the payload."""
    before = 0.0
    for k, step in enumerate(route):
        before += step.flops
        nxt = route[k + 1].node if k + 1 < len(route) else GROUND
        if nxt != source:
            return step.out_bytes, before, float(sum(s.flops for s in route[k + 1:]))
    raise ValueError(f"a route from {source} never leaves it")  # the last step always does


def serving_option_bank(options: Sequence[str], routes: Mapping[str, Sequence[Sequence[Step]]],
                        requests: Sequence[SimRequest], members: Sequence[int],
                        accuracy: Mapping[str, float]) -> OptionBank:
    """The ``options`` (scheme names) as a policy sees them for the requests ``members`` of one
    demand group: per tile, the mean over those requests of what each option's route charges
    (:func:`route_numbers`; FLOPs on other satellites count as after sending), and the expected
    land-cover ``accuracy`` of each scheme for the group's modality."""
    out = []
    for name in options:
        per_tile = [[x / requests[i].tiles for x in route_numbers(routes[name][i],
                                                                   requests[i].source)]
                    for i in members]
        payload, onboard, ground = (float(v) for v in np.mean(per_tile, axis=0))
        out.append(Option(name, accuracy[name], payload, onboard, ground))
    return OptionBank(out)


@dataclass(frozen=True)
class _Capture:
    """A request as a policy reads it (:class:`research.opt.policies.CaptureLike`)."""

    index: int
    satellite: str
    t_s: float
    tiles: int


class PolicyRouter:
    """A :class:`~research.serving.simulator.RouteChooser` running one policy per demand group.

    Requests of the same modality and tasks share an option bank and one policy instance (a
    source belongs to one demand, so per-satellite state never mixes groups). ``routes`` holds
    every option's route per request; the policy picks which one each request takes.
    """

    def __init__(self, spec: Mapping, problem: PlacementProblem, requests: Sequence[SimRequest],
                 routes: Mapping[str, Sequence[Sequence[Step]]],
                 accuracy: Mapping[str, Mapping[str, float]], plan: ContactPlan,
                 nodes: Mapping[str, Node], resources: NetworkResources,
                 deadline_s: float) -> None:
        spec = dict(spec)
        probe = build_policy(spec)
        self.label = probe.label  # as written (a filled-in deadline is not part of it)
        if "deadline_s" in type(probe).PARAMS and spec.get("deadline_s") is None:
            spec["deadline_s"] = deadline_s  # the workload's deadline, which misses count against
        self.routes = routes
        options = policy_options(list(routes))
        sats = [n.profile for n in nodes.values() if n.on_board]
        grounds = [n.profile for n in nodes.values() if not n.on_board]
        if not sats or not grounds:
            raise ValueError("a serving policy needs satellite and ground nodes")
        self.captures = [_Capture(i, r.source, r.capture_s, r.tiles)
                         for i, r in enumerate(requests)]
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            d = problem.demands[r.demand]
            groups.setdefault((d.modality, d.tasks), []).append(i)
        self.policy_of: dict[int, Policy] = {}
        self.names_of: dict[int, list[str]] = {}
        self.choice: dict[int, int] = {}
        if probe.offline and len(groups) > 1:
            raise ValueError(f"policy {probe.kind!r} plans one demand group (modality and tasks) "
                             f"at a time, and would give each of these {len(groups)} every "
                             "station: run it with one modality and one task set")
        self.groups: dict[str, dict] = {}
        for (modality, tasks), members in groups.items():
            if modality not in accuracy:
                raise ValueError(f"no measured accuracy for modality {modality!r} (have "
                                 f"{sorted(accuracy)})")
            missing = [o for o in options if o not in accuracy[modality]]
            if missing:
                raise ValueError(f"no measured accuracy of {missing} for modality {modality!r}")
            bank = serving_option_bank(options, routes, requests, members, accuracy[modality])
            policy = build_policy(spec)
            try:
                policy.prepare(PolicyContext(
                    bank=bank, plan=plan, satellite_profile=sats[0], ground_profile=grounds[0],
                    captures=[self.captures[i] for i in members] if policy.offline else [],
                    relay=plan.has_isl, station_antennas=resources.station_antennas,
                    downlink_transmitters=resources.downlink_transmitters))
            except UnreachableFloorError as err:
                raise UnreachableFloorError(f"modality {modality!r}: {err}") from None
            for i in members:
                self.policy_of[i], self.names_of[i] = policy, bank.names
            self.groups[f"{modality}:{'+'.join(tasks)}"] = {
                "options": {o.name: {"accuracy": o.accuracy, "payload_bytes": o.payload_bytes,
                                     "flops_onboard": o.flops_onboard,
                                     "flops_ground": o.flops_ground} for o in bank.options},
                **policy.describe()}
        self.describe = {**Policy.describe(probe), "deadline_s": spec.get("deadline_s"),
                         "groups": self.groups}

    def route(self, i: int, accel_free_at: float) -> tuple[str, Sequence[Step]]:
        self.choice[i] = self.policy_of[i].decide(self.captures[i], accel_free_at)
        name = self.names_of[i][self.choice[i]]
        return name, self.routes[name][i]

    def sent(self, i: int, t_free: float | None) -> None:
        self.policy_of[i].sent(self.captures[i], self.choice[i], t_free)
