"""Per-request policies in serving: which route answers each capture, chosen as it is captured.

The serving schemes (:mod:`research.serving.compare`) are the **options** of the per-capture
policies of :mod:`research.opt` (``policy: {kind: fixed | greedy | oracle, ...}``, the same
registry and parameters as an evaluation scenario): the placed microservices (embedder and codec
on board, the rest where placement puts it), the shared encoder on board, and the tiles sent down
raw or in a measured image format. ``monolithic`` is not an option (it costs more than
``onboard_shared`` for the same answer).

Each option is described to the policy per tile, for the demand's modality and tasks: its
expected land-cover accuracy (measured for that scheme on the held-out evaluation tiles), the
bytes that leave the satellite, and the FLOPs on board before sending and on the ground. For the
microservices the policy assumes the encoder runs on the ground (placement may put stages on
satellites: the simulation charges the real route). Requests carry no pixels, so a policy's
reported accuracy is the same expectation weighted by its choices (modelled, not measured per
request).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from research.opt import Option, OptionBank, Policy, PolicyContext, build_policy
from research.orbit.contact_plan import ContactPlan
from research.orbit.network import NetworkResources
from research.serving.placement import Demand, Node, PlacementProblem
from research.serving.simulator import SimRequest, Step, raw_bytes

__all__ = ["PolicyRouter", "policy_options", "serving_option_bank"]


def policy_options(schemes: Sequence[str]) -> list[str]:
    """The schemes a policy may choose among (every scheme but ``monolithic``)."""
    return [s for s in schemes if s != "monolithic"]


def _flops(p: PlacementProblem, services: Sequence[str]) -> float:
    return float(sum(p.flops[s] for s in services))


def serving_option_bank(p: PlacementProblem, d: Demand, options: Sequence[str],
                        accuracy: Mapping[str, float],
                        image_tile_bytes: Mapping[str, Mapping[str, float]]) -> OptionBank:
    """The ``options`` (scheme names) as a policy sees them for demand ``d`` (numbers per tile).

    ``accuracy``: expected land-cover accuracy per scheme for ``d``'s modality;
    ``image_tile_bytes``: per image format, bytes per tile by modality."""
    chain = [*p.stages, *(p.heads[t] for t in d.tasks)]
    whole = _flops(p, [p.embedders[d.modality], *chain])
    out = []
    for name in options:
        if name == "microservice":
            front = p.source_services(d.modality)
            ground = [s for k in range(len(p.stages)) for s in p.stage_services(d, k)]
            out.append(Option(name, accuracy[name], p.payload_bytes(d.modality, 1),
                              _flops(p, front), _flops(p, ground)))
        elif name == "onboard_shared":
            out.append(Option(name, accuracy[name], p.result_bytes(d) / d.tiles, whole, 0.0))
        elif name.startswith("ground_"):
            fmt = name.removeprefix("ground_")
            size = raw_bytes(d.modality) if fmt == "raw" else image_tile_bytes[fmt][d.modality]
            out.append(Option(name, accuracy[name], float(size), 0.0, whole))
        else:
            raise ValueError(f"serving scheme {name!r} is not a policy option; expected "
                             "microservice, onboard_shared or ground_<format>")
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
                 accuracy: Mapping[str, Mapping[str, float]],
                 image_tile_bytes: Mapping[str, Mapping[str, float]], plan: ContactPlan,
                 nodes: Mapping[str, Node], resources: NetworkResources,
                 deadline_s: float) -> None:
        spec = dict(spec)
        probe = build_policy(spec)
        if "deadline_s" in type(probe).PARAMS and spec.get("deadline_s") is None:
            spec["deadline_s"] = deadline_s  # the workload's deadline, which misses count against
        self.label = build_policy(spec).label
        self.routes = routes
        options = policy_options(list(routes))
        sat = next(n for n in nodes.values() if n.on_board).profile
        ground = next(n for n in nodes.values() if not n.on_board).profile
        self.captures = [_Capture(i, r.source, r.capture_s, r.tiles)
                         for i, r in enumerate(requests)]
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            d = problem.demands[r.demand]
            groups.setdefault((d.modality, d.tasks), []).append(i)
        self.policy_of: dict[int, Policy] = {}
        self.names_of: dict[int, list[str]] = {}
        self.choice: dict[int, int] = {}
        self.describe = {}
        for (modality, _), members in groups.items():
            d = problem.demands[requests[members[0]].demand]
            bank = serving_option_bank(problem, d, options, accuracy[modality], image_tile_bytes)
            policy = build_policy(spec)
            policy.prepare(PolicyContext(
                bank=bank, plan=plan, satellite_profile=sat, ground_profile=ground,
                captures=[self.captures[i] for i in members] if policy.offline else [],
                relay=plan.has_isl, station_antennas=resources.station_antennas,
                downlink_transmitters=resources.downlink_transmitters))
            for i in members:
                self.policy_of[i], self.names_of[i] = policy, bank.names
            self.describe = policy.describe()

    def route(self, i: int, accel_free_at: float) -> tuple[str, Sequence[Step]]:
        self.choice[i] = self.policy_of[i].decide(self.captures[i], accel_free_at)
        name = self.names_of[i][self.choice[i]]
        return name, self.routes[name][i]

    def sent(self, i: int, t_free: float | None) -> None:
        self.policy_of[i].sent(self.captures[i], self.choice[i], t_free)
