"""Run a scenario: every scheme answers the same captures; the contact plan prices each answer.

Per capture (a satellite, a time, a test image) and scheme: on-board compute starts at capture
time; the payload then travels to the earliest-reached ground station through
``ContactPlan.transfer`` (store-and-forward over ISLs and ground contacts); the ground computes;
if the head is on the satellite, the features go back up, the head runs on board and the answer
comes down again. The answer is complete when it is on the ground (where its user is).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from research.data.eurosat import EuroSATDataModule
from research.eval.ledger import LedgerRow, check_row, summarise, write_ledger
from research.eval.scenario import EvalScenario, ScenarioError
from research.eval.schemes import ANSWER_BYTES, SchemeOutput, build_scheme
from research.models.loading import load_classifier
from research.orbit.contact_plan import ContactPlan
from research.orbit.routing import TransferResult, UnreachableError

__all__ = ["Capture", "EvalResult", "captures_for", "evaluate", "test_images", "to_ground"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Capture:
    """One image taken by one satellite at one time."""

    index: int
    satellite: str
    t_s: float
    image: int


@dataclass
class EvalResult:
    """The ledger, its per-scheme summary and the files written."""

    rows: list[LedgerRow]
    summary: list[dict]
    paths: dict[str, Path]
    skipped: dict[str, str]


def test_images(scenario: EvalScenario) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split of the scenario's image source (never seen by the committed models)."""
    spec = scenario.images
    if spec.source == "embedded":
        dm = EuroSATDataModule(root=None)
    else:
        dm = EuroSATDataModule(root=spec.root or "../shared/data/eurosat_rgb",
                               split_file=spec.split_file)
    images, labels = dm.subset("test").tensors
    if spec.limit:
        images, labels = images[: spec.limit], labels[: spec.limit]
    return images, labels


def captures_for(scenario: EvalScenario, plan: ContactPlan, num_images: int) -> list[Capture]:
    """The workload: seeded satellite choice, one capture every ``interval_s``, images shuffled."""
    spec = scenario.captures
    sats = list(plan.satellites) if spec.satellites == "all" else list(spec.satellites)
    unknown = [s for s in sats if s not in plan.satellites]
    if unknown:
        raise ScenarioError(f"captures.satellites: {unknown[:3]} are not in the constellation "
                            f"(e.g. {plan.satellites[0]!r})")
    last = spec.start_s + (spec.count - 1) * spec.interval_s
    if last >= plan.horizon_s:
        raise ScenarioError(f"the last capture (t = {last:g} s) is beyond the orbit horizon "
                            f"({plan.horizon_s:g} s); use fewer captures or a shorter interval")
    rng = np.random.default_rng(spec.seed)
    order = rng.permutation(num_images)
    chosen = rng.integers(0, len(sats), size=spec.count)
    return [Capture(i, sats[chosen[i]], spec.start_s + i * spec.interval_s,
                    int(order[i % num_images])) for i in range(spec.count)]


def to_ground(plan: ContactPlan, sat: str, n_bytes: float, t0: float) -> TransferResult:
    """Earliest arrival of ``n_bytes`` from ``sat`` at any ground station (one search)."""
    return plan.transfer(sat, plan.stations, n_bytes, t0)


def from_ground(plan: ContactPlan, sat: str, n_bytes: float, t0: float) -> TransferResult:
    """Earliest arrival of ``n_bytes`` at ``sat`` from whichever ground station reaches it first."""
    return plan.transfer(plan.stations, sat, n_bytes, t0)


def _bytes_by_kind(result: TransferResult) -> dict[str, float]:
    out = {"isl": 0.0, "ground": 0.0}
    for hop in result.hops:
        out["ground" if hop.kind == "ground" else "isl"] += result.n_bytes
    return out


def _row(scheme: str, cap: Capture, label: int, out: SchemeOutput, i: int,
         plan: ContactPlan, scenario: EvalScenario) -> LedgerRow:
    sat_p, ground_p = scenario.satellite_profile, scenario.ground_profile
    pred = int(out.predictions[i])
    payload = int(out.payload_bytes[i])
    compute_s = sat_p.seconds(out.flops_onboard)
    base = dict(scheme=scheme, capture=cap.index, satellite=cap.satellite, t_capture_s=cap.t_s,
                image=cap.image, label=label, prediction=pred, correct=pred == label,
                payload_bytes=payload, flops_onboard=out.flops_onboard + out.flops_return_onboard,
                flops_ground=out.flops_ground)
    try:
        down = to_ground(plan, cap.satellite, payload, cap.t_s + compute_s)
        ground_s = ground_p.seconds(out.flops_ground)
        kinds = _bytes_by_kind(down)
        return_s, uplink, transmit_j, station, hops = 0.0, 0.0, down.energy_j, down.path[-1], 0
        if out.return_bytes:
            t_ground = down.t_arrival + ground_s
            up = from_ground(plan, cap.satellite, out.return_bytes, t_ground)
            t_head = up.t_arrival + sat_p.seconds(out.flops_return_onboard)
            answer = to_ground(plan, cap.satellite, ANSWER_BYTES, t_head)
            return_s = answer.t_arrival - t_ground
            up_kinds, ans_kinds = _bytes_by_kind(up), _bytes_by_kind(answer)
            uplink = up_kinds["ground"]
            kinds["isl"] += up_kinds["isl"] + ans_kinds["isl"]
            kinds["ground"] += ans_kinds["ground"]
            transmit_j += up.energy_j + answer.energy_j
            station, hops = answer.path[-1], len(up.hops) + len(answer.hops)
        row = LedgerRow(
            **base, delivered=True, station=station, bytes_isl=kinds["isl"],
            bytes_downlink=kinds["ground"], bytes_uplink=uplink,
            energy_compute_j=sat_p.energy_j(out.flops_onboard + out.flops_return_onboard),
            energy_transmit_j=transmit_j, onboard_compute_s=compute_s, wait_s=down.wait_s,
            transmit_s=down.transmit_s, propagation_s=down.propagation_s,
            ground_compute_s=ground_s, return_s=return_s,
            latency_s=compute_s + down.latency_s + ground_s + return_s, hops=len(down.hops) + hops)
    except UnreachableError:
        nan = float("nan")
        row = LedgerRow(**base, delivered=False, station="", bytes_isl=0.0, bytes_downlink=0.0,
                        bytes_uplink=0.0, energy_compute_j=sat_p.energy_j(out.flops_onboard),
                        energy_transmit_j=0.0, onboard_compute_s=compute_s, wait_s=nan,
                        transmit_s=nan, propagation_s=nan, ground_compute_s=nan, return_s=nan,
                        latency_s=nan, hops=0)
    check_row(row)
    return row


def evaluate(scenario: EvalScenario, *, plan: ContactPlan | None = None,
             out: str | Path | None = None, progress: bool = True) -> EvalResult:
    """Run every scheme of ``scenario`` on the same captures; write the ledger and summary."""
    plan = plan or scenario.orbit.build()
    images, labels = test_images(scenario)
    captures = captures_for(scenario, plan, len(images))
    used = sorted({c.image for c in captures})
    position = {img: k for k, img in enumerate(used)}
    batch = images[used]
    clf = load_classifier(scenario.model.checkpoint, split_index=scenario.model.split_index,
                          head_placement=scenario.model.head_placement)
    rows: list[LedgerRow] = []
    skipped: dict[str, str] = {}
    for spec in tqdm(scenario.schemes, desc="schemes", disable=not progress):
        scheme = build_scheme(spec, clf)
        output = scheme.run(batch)
        memory = scenario.satellite_profile.memory_bytes
        if output.onboard_model_bytes > memory:
            skipped[spec.name] = (f"on-board part needs {output.onboard_model_bytes / 2**20:.0f} "
                                  f"MiB, the satellite has {memory / 2**20:.0f} MiB")
            log.warning("scheme %s skipped: %s", spec.name, skipped[spec.name])
            continue
        for cap in tqdm(captures, desc=spec.name, leave=False, disable=not progress):
            rows.append(_row(spec.name, cap, int(labels[cap.image]), output,
                             position[cap.image], plan, scenario))
    summary = summarise(rows)
    meta = {"scenario": scenario.name, "config": scenario.raw, "plan": plan.summary(),
            "satellite_profile": scenario.satellite_profile.to_dict(),
            "ground_profile": scenario.ground_profile.to_dict(),
            "captures": asdict(scenario.captures), "test_images": len(images), "skipped": skipped}
    paths = write_ledger(rows, summary, out or scenario.out, meta=meta)
    return EvalResult(rows, summary, paths, skipped)

