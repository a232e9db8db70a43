"""Per-capture policies: which option (cut, codec and rate, image format, on board) answers a scene.

A policy is one :class:`Policy` subclass registered under the ``kind`` a scenario's ``policy:``
section names, with one decorator (as Flower's ``Strategy`` is the seam for federated schemes)::

    @register_policy("greedy")
    class GreedyPolicy(Policy): ...

The simulator (:func:`research.eval.evaluate.simulate_policy`) calls the hooks:

- :meth:`Policy.check_params` (classmethod): validate the YAML parameters;
- :meth:`Policy.prepare`: once, with the :class:`PolicyContext` (options, contact plan, device
  profiles and, for an offline policy only, the whole workload);
- :meth:`Policy.decide`: at each capture, in time order, with what the satellite knows then (its
  accelerator's queue); returns an option number;
- :meth:`Policy.sent`: when the scene's bytes have been booked on the network (the satellite learns
  when its transmitter is free again).

Registered here: ``fixed`` (one option for every capture: every current scheme), ``greedy`` (an
on-board online controller), ``priced`` (the greedy controller with a price on accuracy that
falls as credit builds up, spending the floor's slack where it saves most) and ``oracle``
(:mod:`research.opt.oracle`, the offline bound).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from research.opt.options import OptionBank
from research.opt.outlook import DownlinkOutlook
from research.orbit.contact_plan import ContactPlan
from research.registry import Registry

__all__ = [
    "FLOOR_MODES",
    "OBJECTIVES",
    "FixedPolicy",
    "GreedyPolicy",
    "Policy",
    "PolicyContext",
    "PricedGreedyPolicy",
    "build_policy",
    "check_choice",
    "list_policies",
    "parse_policy_section",
    "policy_class",
    "register_policy",
]

FLOOR_MODES = ("capture", "mean")
OBJECTIVES = ("latency", "energy")


class CaptureLike(Protocol):
    """What a policy reads of a capture (:class:`research.workload.Capture`)."""

    index: int
    satellite: str
    t_s: float
    tiles: int


class Profile(Protocol):
    """A device profile's time and energy model (:class:`devices.DeviceProfile`)."""

    def seconds(self, flops: float) -> float: ...

    def energy_j(self, flops: float) -> float: ...


@dataclass
class PolicyContext:
    """What a policy is prepared with.

    ``period_s`` is the constellation's orbital period (the default delivery deadline).

    ``captures`` is the whole workload in time order: only an offline policy (the oracle bound)
    may read it; online policies see a capture when :meth:`Policy.decide` is called.
    """

    bank: OptionBank
    plan: ContactPlan
    satellite_profile: Profile
    ground_profile: Profile
    period_s: float = 5739.0
    captures: Sequence[CaptureLike] = ()
    relay: bool = True
    station_antennas: int = 1
    downlink_transmitters: int = 1

    @property
    def outlook(self) -> DownlinkOutlook:
        """The contact-plan downlink outlook, built once per plan and shared by every policy."""
        return DownlinkOutlook.for_plan(self.plan)

    def compute_s(self) -> np.ndarray:
        """Seconds on board per tile before each option can send."""
        return np.array([self.satellite_profile.seconds(f) for f in self.bank.flops_before_send])

    def onboard_energy_j(self) -> np.ndarray:
        """On-board compute joules per tile of each option (the head after a return included)."""
        return np.array([self.satellite_profile.energy_j(f) for f in self.bank.flops_onboard])

    def ground_s(self) -> np.ndarray:
        """Ground compute seconds per tile of each option."""
        return np.array([self.ground_profile.seconds(f) for f in self.bank.flops_ground])


class Policy:
    """Base class of per-capture policies (hooks in the module docstring).

    Attributes:
        kind: Registry name (set by :func:`register_policy`).
        PARAMS: Accepted parameters and their defaults (``None``: required).
    """

    kind: ClassVar[str] = ""
    PARAMS: ClassVar[dict[str, Any]] = {}
    offline: ClassVar[bool] = False
    """True for a policy that may read the whole workload (``PolicyContext.captures``)."""

    def __init__(self, **params: Any) -> None:
        self.params = self.check_params(params)

    @classmethod
    def check_params(cls, params: dict[str, Any], where: str = "policy") -> dict[str, Any]:
        """``params`` completed with defaults; ValueError naming ``where`` and the bad key."""
        unknown = sorted(set(params) - set(cls.PARAMS))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown} for policy {cls.kind!r}; valid "
                             f"keys: {sorted(cls.PARAMS)}")
        out = {**cls.PARAMS, **params}
        missing = [k for k, v in out.items() if v is None and k in cls.required()]
        if missing:
            raise ValueError(f"{where}: policy {cls.kind!r} needs {missing}")
        return out

    @classmethod
    def required(cls) -> tuple[str, ...]:
        return ()

    @property
    def label(self) -> str:
        """The name the ledger gives this policy's rows."""
        return self.kind

    def labelled(self, head: str, shown: Sequence[str]) -> str:
        """``head`` then ``,key=value`` for each parameter not in ``shown`` that differs from its
        default, so policies that differ in any parameter have different labels (and defaults
        keep the short one)."""
        extra = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                 for k, v in self.params.items() if k not in shown and v != self.PARAMS.get(k)]
        return ",".join([head, *extra])

    def prepare(self, ctx: PolicyContext) -> None:
        """Called once before the first capture; the default needs nothing."""

    def decide(self, capture: CaptureLike, accel_free_at: float) -> int:
        """The option number for ``capture``; ``accel_free_at`` is when its satellite's
        accelerator finishes the scenes already queued."""
        raise NotImplementedError

    def sent(self, capture: CaptureLike, option: int, t_free: float | None) -> None:
        """The scene's bytes were booked; they have all left the satellite at ``t_free`` (its
        first hop, a downlink or an ISL, is done; ``None``: not delivered). The default ignores
        it."""

    def describe(self) -> dict[str, Any]:
        """Kind and parameters, for metadata."""
        return {"kind": self.kind, **self.params}


_POLICIES: Registry[type[Policy]] = Registry("policy kind", name_attr="kind")


def register_policy(kind: str) -> Callable[[type[Policy]], type[Policy]]:
    """Class decorator registering a :class:`Policy` under ``kind`` (a scenario's ``policy.kind``)."""
    return _POLICIES.register(kind)


def policy_class(kind: str) -> type[Policy]:
    """The policy class registered as ``kind`` (ValueError naming the valid kinds otherwise)."""
    return _POLICIES.get(kind)


def list_policies() -> list[str]:
    """Every registered policy kind, sorted."""
    return _POLICIES.names()


def build_policy(spec: dict[str, Any], where: str = "policy") -> Policy:
    """The policy a ``{kind: ..., <params>}`` mapping describes."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"{where} must be a mapping with 'kind', one of {list_policies()}; "
                         f"got {spec!r}")
    params = {k: v for k, v in spec.items() if k != "kind"}
    try:
        cls = policy_class(str(spec["kind"]))
    except ValueError as err:
        raise ValueError(f"{where}.kind: {err}") from None
    cls.check_params(params, where)
    return cls(**params)


def parse_policy_section(raw: Any, options: Sequence[str], where: str) -> list[dict]:
    """A scenario's ``policy:`` section: ``None``, one ``{kind: ..., <params>}`` mapping or a
    list of them, each checked by its registered class; a ``fixed`` policy must name one of
    ``options``, and labels must be unique. ValueError naming ``where`` and the entry otherwise."""
    if raw is None:
        return []
    entries = raw if isinstance(raw, list) else [raw]
    out = []
    for i, entry in enumerate(entries):
        at = f"{where}" + (f"[{i}]" if isinstance(raw, list) else "")
        policy = build_policy(entry, at)
        if policy.kind == "fixed" and policy.params["option"] not in options:
            raise ValueError(f"{at}.option {policy.params['option']!r} is not one of the "
                             f"options {list(options)}")
        out.append(dict(entry))
    labels = [build_policy(e).label for e in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{where}: policy labels {labels} must be unique (two policies with "
                         "the same kind and parameters)")
    return out


def _number(params: dict, key: str, where: str, low: float, high: float = math.inf) -> float:
    v = params[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
        raise ValueError(f"{where}.{key} must be a number in [{low}, {high}], got {v!r}")
    return float(v)


def check_choice(params: dict, key: str, where: str, valid: Sequence[str]) -> str:
    """``params[key]`` if it is one of ``valid``, else a ValueError naming the key and the choices."""
    if params[key] not in valid:
        raise ValueError(f"{where}.{key} {params[key]!r} is not one of {list(valid)}")
    return str(params[key])


class FloorPolicy(Policy):
    """Shared parameters of policies held to an accuracy floor.

    ``floor``: expected accuracy every choice must reach (``floor_mode: capture``), or that the
    mean over each satellite's choices must keep (``floor_mode: mean``: a satellite may answer a
    scene below the floor when its earlier choices banked enough accuracy). ``deadline_s``: the
    delivery deadline (default one orbital period of the plan's constellation).
    """

    PARAMS: ClassVar[dict[str, Any]] = {"floor": 0.95, "floor_mode": "mean",
                                        "deadline_s": None}

    @classmethod
    def check_params(cls, params: dict[str, Any], where: str = "policy") -> dict[str, Any]:
        out = super().check_params(params, where)
        out["floor"] = _number(out, "floor", where, 0.0, 1.0)
        check_choice(out, "floor_mode", where, FLOOR_MODES)
        if out["deadline_s"] is not None:
            out["deadline_s"] = _number(out, "deadline_s", where, 1e-9)
        return out

    def prepare(self, ctx: PolicyContext) -> None:
        super().prepare(ctx)
        ctx.bank.check_floor(self.params["floor"], f"policy {self.kind!r} floor")
        self.deadline_s = self.params["deadline_s"] or ctx.period_s

    @property
    def label(self) -> str:
        return self.labelled(f"{self.kind}@{self.params['floor']:g}", ("floor",))


@register_policy("fixed")
class FixedPolicy(Policy):
    """The same option for every capture (each scheme the codebase compared until now)."""

    PARAMS: ClassVar[dict[str, Any]] = {"option": None}

    @classmethod
    def required(cls) -> tuple[str, ...]:
        return ("option",)

    @property
    def label(self) -> str:
        return str(self.params["option"])

    def prepare(self, ctx: PolicyContext) -> None:
        super().prepare(ctx)
        self.choice = ctx.bank.index(str(self.params["option"]))

    def decide(self, capture: CaptureLike, accel_free_at: float) -> int:
        return self.choice


@register_policy("greedy")
class GreedyPolicy(FloorPolicy):
    """An online controller that could run on board: per capture, the option with the lowest
    estimated latency (``objective: latency``) or on-board energy (``objective: energy``, among
    options estimated to arrive within the deadline when any does) that keeps the accuracy floor.

    Its estimate uses only what the satellite knows: its accelerator's queue, its own transmit
    queue, and the ground contacts in the contact plan of itself and of the satellites within
    ``relay_hops`` ISL hops (:class:`DownlinkOutlook`; none without ISLs). ``relay_hops: auto``
    (the default) takes the plan's :meth:`DownlinkOutlook.reach`, the fewest hops within which
    every satellite nearly always has a relay in view of a station. It cannot see other
    satellites' bookings; the simulation charges what really happens.
    """

    PARAMS: ClassVar[dict[str, Any]] = {**FloorPolicy.PARAMS, "objective": "latency",
                                        "relay_hops": "auto"}

    @classmethod
    def check_params(cls, params: dict[str, Any], where: str = "policy") -> dict[str, Any]:
        out = super().check_params(params, where)
        check_choice(out, "objective", where, OBJECTIVES)
        hops = out["relay_hops"]
        if hops != "auto" and (isinstance(hops, bool) or not isinstance(hops, int) or hops < 0):
            raise ValueError(f"{where}.relay_hops must be an integer >= 0 or 'auto', got {hops!r}")
        return out

    @property
    def label(self) -> str:
        return self.labelled(f"{self.kind}-{self.params['objective']}@{self.params['floor']:g}",
                             ("objective", "floor"))

    def prepare(self, ctx: PolicyContext) -> None:
        super().prepare(ctx)
        bank = ctx.bank
        self.outlook = ctx.outlook
        self.acc = bank.accuracy.tolist()
        self.bytes = bank.payload_bytes.tolist()
        self.compute = ctx.compute_s().tolist()
        self.energy = ctx.onboard_energy_j().tolist()
        self.ground = ctx.ground_s().tolist()
        self.floor = self.params["floor"]
        self.mean_mode = self.params["floor_mode"] == "mean"
        self.by_energy = self.params["objective"] == "energy"
        every = range(len(bank))
        self.meeting = [o for o in every if self.acc[o] >= self.floor] or [int(np.argmax(self.acc))]
        self.tx_free: dict[str, float] = defaultdict(float)
        self.banked: dict[str, float] = defaultdict(float)  # sum of (accuracy - floor) so far
        self.last: dict[str, int] = {}
        self.hops = self.resolve_hops(self.params["relay_hops"], ctx)
        self.via = {s: self.outlook.relays(s, self.hops) for s in ctx.plan.satellites}

    def describe(self) -> dict[str, Any]:
        """Kind and parameters, with the ISL hops it counts once prepared (``auto`` resolved)."""
        out = super().describe()
        if hasattr(self, "hops"):
            out["relay_reach"] = self.hops
        return out

    def resolve_hops(self, hops: int | str, ctx: PolicyContext) -> int:
        """ISL hops whose contacts count: none without ISLs, the plan's reach for ``auto``."""
        if not ctx.relay:
            return 0
        return self.outlook.reach() if hops == "auto" else int(hops)

    def candidates(self, satellite: str) -> list[int]:
        """Options that keep the floor for this satellite's next scene."""
        if not self.mean_mode:
            return self.meeting
        credit = self.banked[satellite]
        ok = [o for o, a in enumerate(self.acc) if credit + a - self.floor >= -1e-12]
        return ok or self.meeting

    def estimate(self, capture: CaptureLike, accel_free_at: float, option: int
                 ) -> tuple[float, float, float]:
        """``(latency_s, on-board energy J, occupancy_s)`` the satellite expects for ``option``;
        occupancy is the accelerator and transmitter time it takes from the scenes after it."""
        n = capture.tiles
        compute_s = self.compute[option] * n
        ready = max(capture.t_s, accel_free_at) + compute_s
        start = max(ready, self.tx_free[capture.satellite])
        done, tx_s = self.outlook.finish_via(self.via[capture.satellite], start,
                                             self.bytes[option] * n)
        latency = done - capture.t_s + self.ground[option] * n
        power = self.outlook.tx_power_w[capture.satellite]
        energy = self.energy[option] * n + (power * tx_s if math.isfinite(tx_s) else math.inf)
        return latency, energy, compute_s + tx_s

    def decide(self, capture: CaptureLike, accel_free_at: float) -> int:
        """Lowest cost among the options that keep the floor.

        The latency cost adds the option's occupancy to its own latency, a heuristic that counts
        the compute and transmit time twice (once for this scene, once for the scenes it delays):
        when the next contact is far away every option waits for it, and without that price the
        one that blocks the accelerator or transmitter longest (the whole model on board, the raw
        image) would win on a tie and delay every later scene."""
        sat = capture.satellite
        scored = []
        for o in self.candidates(sat):
            latency, energy, occupancy = self.estimate(capture, accel_free_at, o)
            scored.append((self.cost(sat, o, latency, energy, occupancy), o, latency))
        _, choice, latency = min(scored)
        self.chosen(capture, choice, latency)
        return choice

    def cost(self, satellite: str, option: int, latency: float, energy: float,
             occupancy: float) -> tuple:
        """The sort key of ``option`` for this scene (the lowest wins)."""
        size = self.bytes[option]  # last resort when no contact is in sight: send the least
        if self.by_energy and latency <= self.deadline_s:
            return (0, energy, latency + occupancy, size)
        return (1 if self.by_energy else 0, latency + occupancy, size, energy)

    def chosen(self, capture: CaptureLike, option: int, latency: float) -> None:
        """Book the choice: the accuracy credit, and the transmitter until the scene is down."""
        sat = capture.satellite
        self.banked[sat] += self.acc[option] - self.floor
        if math.isfinite(latency):
            self.tx_free[sat] = capture.t_s + latency - self.ground[option] * capture.tiles
        self.last[sat] = capture.index

    def sent(self, capture: CaptureLike, option: int, t_free: float | None) -> None:
        """Replace the estimate by the booked time if this is the satellite's latest scene."""
        if t_free is not None and self.last.get(capture.satellite) == capture.index:
            self.tx_free[capture.satellite] = t_free


@register_policy("priced")
class PricedGreedyPolicy(GreedyPolicy):
    """The greedy latency controller with a price on accuracy: it spends its credit (the mean
    floor's slack) on the scenes where a less accurate option saves the most time, not on the
    first scenes that can use it.

    Per scene it minimises ``latency + occupancy - price * (accuracy - floor)`` (accuracy in
    points, the price in seconds a point) among the options that keep the floor, the form of the
    offline LP's Lagrangian with its multiplier. Online the multiplier is not known; here it
    falls as the satellite's credit grows: ``price = price_s * exp(-price_rate * banked)``,
    ``banked`` the points of accuracy above the floor the satellite has saved so far (never
    negative: the floor filter keeps it). With no credit it pays ``price_s`` a point; the more it
    has saved, the less a saved point is worth and the sooner it spends. ``price_s = 0`` is the
    greedy controller. Latency objective and ``floor_mode: mean`` only (with a per-capture floor
    there is no credit to spend).
    """

    PARAMS: ClassVar[dict[str, Any]] = {**GreedyPolicy.PARAMS, "price_s": 1.0,
                                        "price_rate": 0.1}

    @classmethod
    def check_params(cls, params: dict[str, Any], where: str = "policy") -> dict[str, Any]:
        out = super().check_params(params, where)
        if out["objective"] != "latency":
            raise ValueError(f"{where}.objective must be 'latency' for policy 'priced' (its "
                             f"price is in seconds), got {out['objective']!r}")
        if out["floor_mode"] != "mean":
            raise ValueError(f"{where}.floor_mode must be 'mean' for policy 'priced' (it prices "
                             f"the mean floor's credit), got {out['floor_mode']!r}")
        out["price_s"] = _number(out, "price_s", where, 0.0, 1e6)
        out["price_rate"] = _number(out, "price_rate", where, 0.0, 1e6)
        return out

    def price(self, satellite: str) -> float:
        """Seconds a point of accuracy above the floor is worth to ``satellite`` now."""
        banked = 100.0 * max(0.0, self.banked[satellite])
        return self.params["price_s"] * math.exp(-self.params["price_rate"] * banked)

    def cost(self, satellite: str, option: int, latency: float, energy: float,
             occupancy: float) -> tuple:
        surplus = 100.0 * (self.acc[option] - self.floor)
        return (latency + occupancy - self.price(satellite) * surplus, self.bytes[option],
                energy)
