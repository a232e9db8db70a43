"""Run a scenario: every scheme answers the same captures over the same, shared network.

Per scheme, a fresh :class:`~research.orbit.network.NetworkState` is made from the contact plan
and the captures are simulated as events in time order:

1. on board, the scene's tiles go through the satellite part on the satellite's one accelerator
   (first come, first served: a scene waits while earlier ones compute);
2. the scene's payload (its tiles' bytes as one flow) is sent to whichever ground station it
   reaches first, booking links, the transmitter and an antenna (``NetworkState.send``);
3. the ground computes (ground servers are not a bottleneck here);
4. if the head is on the satellite, the features go back up, the head runs on board and the
   answer comes down again.

The answer is complete when it is on the ground (where its user is). A scene that cannot be
delivered within the horizon, or that its satellite cannot store, is a row with
``delivered=False`` and its reason.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from research.data.eurosat import EuroSATDataModule
from research.eval.ledger import LedgerRow, check_row, summarise, write_ledger
from research.eval.scenario import EvalScenario, ScenarioError
from research.eval.schemes import ANSWER_BYTES, SchemeOutput, build_scheme
from research.opt import FixedPolicy, Option, OptionBank, Policy, PolicyContext, build_policy
from research.opt.isolation import isolated_latencies
from research.orbit.contact_plan import ContactPlan
from research.orbit.network import NetworkResources, NetworkState
from research.orbit.routing import TransferResult
from research.tasks.loading import load_classifier
from research.workload import Capture, get_sensor, orbital_period_s, schedule_captures

__all__ = ["Capture", "EvalResult", "calibration_images", "captures_for", "evaluate",
           "isolation_latencies", "option_bank", "policy_context", "random_subset", "run_policies", "run_schemes",
           "simulate_policy", "simulate_scheme", "test_images"]

log = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """The ledger, its per-scheme summary and the files written."""

    rows: list[LedgerRow]
    summary: list[dict]
    paths: dict[str, Path]
    skipped: dict[str, str]
    network: dict[str, dict] = field(default_factory=dict)


def _split_images(scenario: EvalScenario, split: str, limit: int | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """``limit`` images (all without one) of ``split`` of the scenario's image source."""
    spec = scenario.images
    if spec.source == "embedded":
        dm = EuroSATDataModule(root=None)
    else:
        dm = EuroSATDataModule(root=spec.root or "../shared/data/eurosat_rgb",
                               split_file=spec.split_file)
    images, labels = dm.subset(split).tensors
    return random_subset(images, labels, limit)


def test_images(scenario: EvalScenario) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split of the scenario's image source (never seen by the committed models)."""
    return _split_images(scenario, "test", scenario.images.limit)


def random_subset(images: torch.Tensor, labels: torch.Tensor, limit: int | None,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``limit`` images drawn at random (seeded), in split order; all of them without a limit.

    The recorded splits list each class's images together, so the first ``limit`` would be one
    or two classes (the first 1,000 EuroSAT test images are AnnualCrop and Forest only).
    """
    if not limit or limit >= len(images):
        return images, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(images))[:limit])
    idx = torch.from_numpy(keep)
    return images[idx], labels[idx]


def captures_for(scenario: EvalScenario, plan: ContactPlan, num_images: int,
                 period_s: float | None = None, end_s: float | None = None) -> list[Capture]:
    """The scenario's workload on this plan (see :func:`research.workload.schedule_captures`)."""
    spec = scenario.captures
    if spec.satellites == "all":
        sats = list(plan.satellites)
    elif isinstance(spec.satellites, int):
        if not 1 <= spec.satellites <= len(plan.satellites):
            raise ScenarioError(f"captures.satellites: {spec.satellites} is not between 1 and "
                                f"the {len(plan.satellites)} satellites of the constellation")
        sats = list(plan.satellites[: spec.satellites])
    else:
        sats = list(spec.satellites)
    unknown = [s for s in sats if s not in plan.satellites]
    if unknown:
        raise ScenarioError(f"captures.satellites: {unknown[:3]} are not in the constellation "
                            f"(e.g. {plan.satellites[0]!r})")
    if period_s is None:
        period_s = orbital_period_s(scenario.orbit.constellation.satrecs)
    try:
        return schedule_captures(
            get_sensor(spec.sensor), sats, plan.horizon_s, num_images, period_s=period_s,
            per_orbit=spec.per_orbit, count=spec.count, interval_s=spec.interval_s,
            start_s=spec.start_s, end_s=end_s, seed=spec.seed, sample_tiles=spec.sample_tiles)
    except ValueError as err:
        raise ScenarioError(f"captures: {err}") from err


def _bytes_by_kind(result: TransferResult, stations: set[str]) -> dict[str, float]:
    out = {"bytes_downlink": 0.0, "bytes_uplink": 0.0, "bytes_isl": 0.0}
    for hop in result.hops:
        if hop.kind != "ground":
            out["bytes_isl"] += result.n_bytes
        else:
            out["bytes_uplink" if hop.src in stations else "bytes_downlink"] += result.n_bytes
    return out


@dataclass
class _Scene:
    """What one policy does with one capture, accumulated as its events happen."""

    cap: Capture
    option: str
    out: SchemeOutput
    payload: float
    compute_s: float
    accel_wait_s: float
    t_ready: float
    legs: list[TransferResult] = field(default_factory=list)
    t_ground: float = 0.0


def option_bank(outputs: dict[str, SchemeOutput]) -> OptionBank:
    """The schemes' outputs as policy options (per tile: mean bytes, FLOPs, and the expected
    accuracy on calibration images; ``nan`` if not measured, which a policy with a floor refuses)."""
    return OptionBank([Option(name, out.calibration_accuracy,
                              float(np.mean(out.payload_bytes)), out.flops_onboard,
                              out.flops_ground, float(out.return_bytes), out.flops_return_onboard)
                       for name, out in outputs.items()])


def policy_context(bank: OptionBank, plan: ContactPlan, scenario: EvalScenario,
                   captures: list[Capture], net: NetworkState,
                   period_s: float | None = None) -> PolicyContext:
    """What a policy is prepared with for this scenario; pass ``captures`` (the whole workload)
    only to an offline policy (``Policy.offline``)."""
    res = net.resources
    return PolicyContext(
        bank=bank, plan=plan, satellite_profile=scenario.satellite_profile,
        ground_profile=scenario.ground_profile,
        period_s=period_s or orbital_period_s(scenario.orbit.constellation.satrecs),
        captures=captures, relay=plan.has_isl,
        station_antennas=res.station_antennas, downlink_transmitters=res.downlink_transmitters)


def simulate_scheme(name: str, out: SchemeOutput, captures: list[Capture], labels: np.ndarray,
                    position: dict[int, int], plan: ContactPlan, net: NetworkState,
                    scenario: EvalScenario) -> list[LedgerRow]:
    """One scheme over every capture: :func:`simulate_policy` with a ``fixed`` policy."""
    outputs = {name: out}
    ctx = policy_context(option_bank(outputs), plan, scenario, [], net)
    return simulate_policy(FixedPolicy(option=name), outputs, captures, labels, position, plan,
                           net, scenario, ctx)


def simulate_policy(policy: Policy, outputs: dict[str, SchemeOutput], captures: list[Capture],
                    labels: np.ndarray, position: dict[int, int], plan: ContactPlan,
                    net: NetworkState, scenario: EvalScenario, ctx: PolicyContext,
                    name: str | None = None) -> list[LedgerRow]:
    """Every capture answered by the option ``policy`` picks, as time-ordered events on ``net``
    (see the module docstring); rows are named ``name`` (default: the policy's label) and record
    the chosen ``option``."""
    name = name or policy.label
    names = list(outputs)
    policy.prepare(ctx)
    sat_p, ground_p = scenario.satellite_profile, scenario.ground_profile
    stations = set(plan.stations)
    free_at: dict[str, float] = defaultdict(float)  # each satellite's accelerator
    events: list[tuple[float, int, int, Capture | _Scene]] = [
        (cap.t_s, cap.index, _CAPTURE, cap) for cap in captures]
    heapq.heapify(events)
    scenes: dict[int, _Scene] = {}
    rows: dict[int, LedgerRow] = {}

    def finish(scene: _Scene, reason: str = "") -> None:
        rows[scene.cap.index] = _row(name, scene, labels, position, scenario, stations, reason)

    while events:
        t, _, kind, item = heapq.heappop(events)
        if kind == _CAPTURE:
            cap = item
            choice = policy.decide(cap, free_at[cap.satellite])
            out = outputs[names[choice]]
            compute_s = sat_p.seconds(out.flops_onboard * cap.tiles)
            start = max(cap.t_s, free_at[cap.satellite])
            free_at[cap.satellite] = start + compute_s
            idx = [position[i] for i in cap.sample]
            payload = float(np.mean(out.payload_bytes[idx])) * cap.tiles
            scene = scenes[cap.index] = _Scene(cap, names[choice], out, payload, compute_s,
                                               start - cap.t_s, start + compute_s)
            if scene.t_ready < plan.horizon_s:
                heapq.heappush(events, (scene.t_ready, cap.index, _DOWN, scene))
            else:
                finish(scene, "on-board compute ends after the horizon")
            continue
        scene = item
        cap, out = scene.cap, scene.out
        if kind == _DOWN:
            res = net.send(cap.satellite, plan.stations, scene.payload, t)
            policy.sent(cap, names.index(scene.option),
                        (res.hops[0].t_sent if res.hops else t) if res.delivered else None)
        elif kind == _UP:
            res = net.send(plan.stations, cap.satellite, out.return_bytes * cap.tiles, t)
        else:
            res = net.send(cap.satellite, plan.stations, ANSWER_BYTES * cap.tiles, t)
        scene.legs.append(res)
        if not res.delivered:
            finish(scene, res.reason)
            continue
        if kind == _DOWN:
            scene.t_ground = res.t_arrival + ground_p.seconds(out.flops_ground * cap.tiles)
            if not out.return_bytes:
                finish(scene)
            elif scene.t_ground < plan.horizon_s:
                heapq.heappush(events, (scene.t_ground, cap.index, _UP, scene))
            else:
                finish(scene, "the ground finished after the horizon")
        elif kind == _UP:
            t_head = res.t_arrival + sat_p.seconds(out.flops_return_onboard * cap.tiles)
            if t_head < plan.horizon_s:
                heapq.heappush(events, (t_head, cap.index, _ANSWER, scene))
            else:
                finish(scene, "the head finished after the horizon")
        else:
            finish(scene)
    return [rows[c.index] for c in captures]


def isolation_latencies(outputs: dict[str, SchemeOutput], captures: list[Capture],
                        position: dict[int, int], plan: ContactPlan, network: NetworkResources,
                        scenario: EvalScenario, progress: bool = False) -> np.ndarray:
    """``[captures, schemes]`` seconds from capture to answer of each scene answered by each
    scheme with the network to itself (:mod:`research.opt.isolation`): the scene's bytes and
    compute as :func:`simulate_policy` counts them, on no other traffic."""
    sat_p, ground_p = scenario.satellite_profile, scenario.ground_profile
    shape = (len(captures), len(outputs))
    payload, compute, ground, up, head, answer = (np.zeros(shape) for _ in range(6))
    for c, cap in enumerate(captures):
        idx = [position[i] for i in cap.sample]
        for o, out in enumerate(outputs.values()):
            payload[c, o] = float(np.mean(out.payload_bytes[idx])) * cap.tiles
            compute[c, o] = sat_p.seconds(out.flops_onboard * cap.tiles)
            ground[c, o] = ground_p.seconds(out.flops_ground * cap.tiles)
            up[c, o] = out.return_bytes * cap.tiles
            head[c, o] = sat_p.seconds(out.flops_return_onboard * cap.tiles)
            answer[c, o] = ANSWER_BYTES * cap.tiles
    return isolated_latencies(plan, network, captures, payload, compute, ground,
                              return_bytes=up, return_compute_s=head, answer_bytes=answer,
                              progress=progress)


_CAPTURE, _DOWN, _UP, _ANSWER = range(4)  # event kinds; a capture's own events never tie


def _row(name: str, scene: _Scene, labels: np.ndarray, position: dict[int, int],
         scenario: EvalScenario, stations: set[str], reason: str = "") -> LedgerRow:
    sat_p, ground_p = scenario.satellite_profile, scenario.ground_profile
    cap, out = scene.cap, scene.out
    idx = [position[i] for i in cap.sample]
    correct = out.predictions[idx] == labels[list(cap.sample)]
    kinds = {"bytes_downlink": 0.0, "bytes_uplink": 0.0, "bytes_isl": 0.0}
    for leg in scene.legs:
        for k, v in _bytes_by_kind(leg, stations).items():
            kinds[k] += v
    delivered = not reason
    down = scene.legs[0] if scene.legs else None
    flops_on = (out.flops_onboard + out.flops_return_onboard) * cap.tiles
    nan = float("nan")
    if delivered:
        ground_s = ground_p.seconds(out.flops_ground * cap.tiles)
        return_s = scene.legs[-1].t_arrival - scene.t_ground if out.return_bytes else 0.0
        timing = dict(queue_s=scene.accel_wait_s + down.wait_s, transmit_s=down.transmit_s,
                      propagation_s=down.propagation_s, ground_compute_s=ground_s,
                      return_s=return_s,
                      latency_s=(scene.legs[-1].t_arrival if out.return_bytes else
                                 scene.t_ground) - cap.t_s)
    else:
        timing = dict(queue_s=nan, transmit_s=nan, propagation_s=nan, ground_compute_s=nan,
                      return_s=nan, latency_s=nan)
    row = LedgerRow(
        scheme=name, capture=cap.index, satellite=cap.satellite, t_capture_s=cap.t_s,
        tiles=cap.tiles, image=cap.image, label=int(labels[cap.image]),
        prediction=int(out.predictions[position[cap.image]]),
        accuracy=float(np.mean(correct)), delivered=delivered,
        station=scene.legs[-1].path[-1] if delivered else "", payload_bytes=scene.payload,
        **kinds, flops_onboard=flops_on, flops_ground=out.flops_ground * cap.tiles,
        energy_onboard_compute_j=sat_p.energy_j(flops_on),
        energy_onboard_transmit_j=sum(h.energy_j for leg in scene.legs for h in leg.hops
                                      if h.src not in stations),
        energy_ground_j=ground_p.energy_j(out.flops_ground * cap.tiles) if delivered else 0.0,
        energy_onboard_event_j=out.onboard_event_j * cap.tiles,
        onboard_compute_s=scene.compute_s, **timing,
        hops=sum(len(leg.hops) for leg in scene.legs), reason=reason, option=scene.option)
    check_row(row)
    return row


def calibration_images(scenario: EvalScenario) -> tuple[torch.Tensor, torch.Tensor]:
    """The scenario's calibration split (``val`` by default), never the test captures."""
    return _split_images(scenario, scenario.calibration.split, scenario.calibration.limit)


def run_schemes(scenario: EvalScenario, images: torch.Tensor, progress: bool = True,
                calibration: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[dict[str, SchemeOutput], dict[str, str]]:
    """Every scheme on ``images`` (real payloads, predictions, FLOPs), and the ones skipped
    because their on-board part does not fit the satellite's memory (with the reason).

    With ``calibration`` (images, labels), each output's ``calibration_accuracy`` is measured on
    them (what a policy held to an accuracy floor expects of the scheme).
    """
    clf = load_classifier(scenario.model.checkpoint, split_index=scenario.model.split_index,
                          head_placement=scenario.model.head_placement)
    outputs: dict[str, SchemeOutput] = {}
    skipped: dict[str, str] = {}
    memory = scenario.satellite_profile.memory_bytes
    for spec in tqdm(scenario.schemes, desc="schemes", disable=not progress):
        scheme = build_scheme(spec, clf)
        output = scheme.run(images)
        if output.onboard_model_bytes > memory:
            skipped[spec.name] = (f"on-board part needs {output.onboard_model_bytes / 2**20:.0f} "
                                  f"MiB, the satellite has {memory / 2**20:.0f} MiB")
            log.warning("scheme %s skipped: %s", spec.name, skipped[spec.name])
            continue
        if calibration is not None:
            output.calibration_accuracy = scheme.accuracy(*calibration)
        if scenario.event_profile is not None:
            output.onboard_event_j = scheme.onboard_energy_j(images, scenario.event_profile)
        outputs[spec.name] = output
    return outputs, skipped


def run_policies(scenario: EvalScenario, outputs: dict[str, SchemeOutput],
                 captures: list[Capture], labels: np.ndarray, position: dict[int, int],
                 plan: ContactPlan, network: NetworkResources,
                 policies: list[dict] | None = None, period_s: float | None = None
                 ) -> tuple[list[LedgerRow], dict[str, dict]]:
    """Each of the scenario's policies (or ``policies``) over the same captures on a fresh network;
    the rows and, per policy label, its parameters, option mix and network use."""
    bank = option_bank(outputs)
    rows: list[LedgerRow] = []
    info: dict[str, dict] = {}
    for spec in scenario.policies if policies is None else policies:
        policy = build_policy(spec)
        net = NetworkState(plan, network)
        ctx = policy_context(bank, plan, scenario, captures if policy.offline else [], net,
                             period_s)
        # a fixed policy on a scheme has the scheme's name: its rows are told apart
        name = f"policy:{policy.label}" if policies is None and policy.label in outputs else None
        got = simulate_policy(policy, outputs, captures, labels, position, plan, net, scenario,
                              ctx, name)
        rows.extend(got)
        mix = Counter(r.option for r in got)
        info[name or policy.label] = {**policy.describe(), "options": {n: mix.get(n, 0) for n in outputs},
                              "network_use": net.summary()}
    return rows, info


def evaluate(scenario: EvalScenario, *, plan: ContactPlan | None = None,
             out: str | Path | None = None, progress: bool = True,
             network: NetworkResources | None = None) -> EvalResult:
    """Run every scheme of ``scenario`` on the same captures; write the ledger and summary.

    ``network`` overrides the scenario's network resources (e.g. ``capacity="unlimited"``).
    """
    plan = plan or scenario.orbit.build()
    images, labels = test_images(scenario)
    labels_np = labels.numpy()
    captures = captures_for(scenario, plan, len(images))
    used = sorted({i for c in captures for i in c.sample})
    position = {img: k for k, img in enumerate(used)}
    calibration = calibration_images(scenario) if scenario.policies else None
    outputs, skipped = run_schemes(scenario, images[used], progress, calibration)
    rows: list[LedgerRow] = []
    net_summary: dict[str, dict] = {}
    for name, output in outputs.items():
        net = NetworkState(plan, network or scenario.network)
        rows.extend(simulate_scheme(name, output, captures, labels_np, position, plan, net,
                                    scenario))
        net_summary[name] = net.summary()
    policy_rows, policy_info = run_policies(scenario, outputs, captures, labels_np, position,
                                            plan, network or scenario.network)
    rows.extend(policy_rows)
    summary = summarise(rows)
    meta = {"scenario": scenario.name, "config": scenario.raw, "plan": plan.summary(),
            "satellite_profile": scenario.satellite_profile.to_dict(),
            "ground_profile": scenario.ground_profile.to_dict(),
            "captures": asdict(scenario.captures),
            "sensor": get_sensor(scenario.captures.sensor).to_dict(),
            "network": (network or scenario.network).to_dict(), "network_use": net_summary,
            "test_images": len(images), "skipped": skipped, "policies": policy_info,
            "calibration_accuracy": {n: o.calibration_accuracy for n, o in outputs.items()}}
    paths = write_ledger(rows, summary, out or scenario.out, meta=meta)
    return EvalResult(rows, summary, paths, skipped, net_summary)

