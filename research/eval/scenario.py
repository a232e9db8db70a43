"""Evaluation scenarios: what is captured where, how the model is split, and what it is run on.

A scenario YAML names an orbit (a scenario file from ``experiments/orbit`` or an inline mapping),
a capture workload, the test images, the split model and the schemes to compare, and the device
profiles. Every key is checked; a typo names itself and the valid keys.

    name: demo
    orbit: experiments/orbit/demo_6x11.yaml
    images: {source: embedded}                 # or {source: eurosat, root: ..., split_file: ...}
    captures: {sensor: sentinel2_msi, per_orbit: 20, start_s: 60, seed: 0}   # or count + interval_s
    network: {capacity: exclusive, station_antennas: 1}   # see research.orbit.NetworkResources
    model: {checkpoint: checkpoints/satvit_small_full_mae_long.ckpt, split_index: 0, head_placement: ground}
    schemes:
      - {name: split-identity, kind: split, link: identity}
      - {name: split-int8, kind: split, link: int8}
      - {name: raw, kind: image, format: raw}
      - {name: jpeg75, kind: image, format: jpeg, quality: 75}
      - {name: onboard, kind: onboard}
    profiles: {satellite: jetson_nano, ground: a100}   # + event_driven: cmos45nm (optional)
    policy: {kind: greedy, floor: 0.95, objective: latency}   # optional: or a list of policies
    calibration: {split: val, limit: 1000}     # where a policy's expected accuracies come from

With ``policy:`` the schemes are also the **options** a per-capture policy chooses among
(:mod:`research.opt`): ``fixed`` (``option: <scheme name>``), ``greedy`` or ``oracle``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from devices import DeviceProfile, get_device
from research.configfile import check_keys, load_config_files
from research.eval.schemes import eval_scheme_class, list_eval_schemes
from research.opt import parse_policy_section
from research.orbit.config import OrbitConfigError, PlanConfig, load_config, parse_config
from research.orbit.network import NetworkResources
from research.paths import DEFAULT_CLASSIFIER, resolve_path
from research.workload import get_sensor

__all__ = [
    "CalibrationSpec",
    "CaptureSpec",
    "EvalScenario",
    "ImageSpec",
    "ModelSpec",
    "ScenarioError",
    "SchemeSpec",
    "load_scenario",
    "parse_scenario",
]

TOP_KEYS = ("name", "orbit", "images", "captures", "network", "model", "schemes", "profiles",
            "policy", "calibration", "out")
IMAGE_KEYS = ("source", "root", "split_file", "limit")
CAPTURE_KEYS = ("sensor", "per_orbit", "count", "satellites", "start_s", "interval_s", "seed",
                "sample_tiles")
NETWORK_KEYS = tuple(f.name for f in fields(NetworkResources))
MODEL_KEYS = ("checkpoint", "split_index", "head_placement")
SCHEME_KEYS = ("name", "kind", "link", "checkpoint", "format", "quality")
PROFILE_KEYS = ("satellite", "ground", "event_driven")
CALIBRATION_KEYS = ("split", "limit")


class ScenarioError(ValueError):
    """A scenario file that does not describe a valid evaluation."""


@dataclass(frozen=True)
class ImageSpec:
    """Which labelled test images the captures draw from."""

    source: str = "embedded"
    root: str | None = None
    split_file: str | None = None
    limit: int | None = None


@dataclass(frozen=True)
class CaptureSpec:
    """What is captured (a :mod:`research.workload` sensor preset) and how often.

    ``per_orbit`` scenes per satellite per orbit (Poisson), or else ``count`` captures, one every
    ``interval_s`` from ``start_s``; ``satellites`` is ``"all"``, a list of names, or the first
    N satellites; ``sample_tiles`` real test tiles stand for each scene.
    """

    sensor: str = "demo_tile"
    per_orbit: float | None = None
    count: int = 100
    satellites: tuple[str, ...] | str | int = "all"
    start_s: float = 60.0
    interval_s: float = 30.0
    seed: int = 0
    sample_tiles: int = 8


@dataclass(frozen=True)
class CalibrationSpec:
    """Labelled images (never the test split the captures draw from) on which each scheme's
    expected accuracy is measured, for policies held to an accuracy floor."""

    split: str = "val"
    limit: int | None = 1000


@dataclass(frozen=True)
class ModelSpec:
    """The fine-tuned classifier and where it is cut."""

    checkpoint: str = DEFAULT_CLASSIFIER
    split_index: int = 0
    head_placement: str = "ground"


@dataclass(frozen=True)
class SchemeSpec:
    """One way of answering a capture.

    ``split``: the satellite part on board, ``link`` (a token baseline, or a trained ``CodecTask``
    checkpoint) across the cut, the rest on the ground. ``image``: the image is encoded as
    ``format`` and the whole model runs on the ground. ``onboard``: the whole model on board and
    only the answer goes down. ``kind`` names a class registered in :mod:`research.eval.schemes`
    (``@register_eval_scheme``), which checks the entry and builds the scheme.
    """

    name: str
    kind: str
    link: str = "identity"
    checkpoint: str | None = None
    format: str = "raw"
    quality: int = 75


@dataclass
class EvalScenario:
    """A validated scenario."""

    name: str
    orbit: PlanConfig
    images: ImageSpec
    captures: CaptureSpec
    model: ModelSpec
    schemes: list[SchemeSpec]
    network: NetworkResources
    satellite_profile: DeviceProfile
    ground_profile: DeviceProfile
    out: str
    policies: list[dict] = field(default_factory=list)
    calibration: CalibrationSpec = field(default_factory=CalibrationSpec)
    raw: dict = field(default_factory=dict)
    event_profile: DeviceProfile | None = None


def _typed(d: dict, key: str, kind: type, where: str) -> Any:
    value = d[key]
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ScenarioError(f"{where}.{key} must be {kind.__name__}, got {value!r}")
    return value


def _scheme(i: int, d: Any, source: str) -> SchemeSpec:
    """One ``schemes:`` entry, checked by the scheme class registered under its ``kind``."""
    where = f"{source}: schemes[{i}]"
    s = _checked(d, SCHEME_KEYS, where)
    if "kind" not in s:
        raise ScenarioError(f"{where} needs 'kind', one of {list_eval_schemes()}")
    try:
        scheme = eval_scheme_class(s["kind"])
    except ValueError as err:
        raise ScenarioError(f"{where}.kind: {err}") from err
    s.setdefault("name", s["kind"])
    try:
        scheme.check_entry(s, where)
    except ValueError as err:
        raise ScenarioError(str(err)) from err
    return SchemeSpec(**s)


def _checked(d: Any, valid: tuple[str, ...], where: str) -> dict:
    return check_keys(d, valid, where, ScenarioError)


def parse_scenario(raw: Any, source: str = "<scenario>",
                   default_name: str | None = None) -> EvalScenario:
    """Validate a scenario mapping (already loaded from YAML); ``name`` defaults to
    ``default_name``, else the stem of ``source``."""
    top = _checked(raw, TOP_KEYS, f"scenario {source} (top level)")
    for req in ("orbit", "model", "schemes"):
        if req not in top:
            raise ScenarioError(f"scenario {source}: missing required key {req!r}")
    try:
        orbit = top["orbit"]
        if isinstance(orbit, str):
            orbit_cfg = load_config(resolve_path(orbit))
        else:
            orbit_cfg = parse_config(orbit, source=f"{source}: orbit")
    except (OrbitConfigError, FileNotFoundError) as err:
        raise ScenarioError(f"scenario {source}: orbit: {err}") from err

    images = ImageSpec(**_checked(top.get("images"), IMAGE_KEYS, f"{source}: images"))
    if images.source not in ("embedded", "eurosat"):
        raise ScenarioError(f"{source}: images.source {images.source!r} is not one of "
                            "['embedded', 'eurosat']")
    captures_raw = _checked(top.get("captures"), CAPTURE_KEYS, f"{source}: captures")
    for key, kind in (("count", int), ("seed", int), ("start_s", float), ("interval_s", float),
                      ("per_orbit", float), ("sample_tiles", int), ("sensor", str)):
        if key in captures_raw:
            captures_raw[key] = _typed(captures_raw, key, kind, f"{source}: captures")
    if isinstance(captures_raw.get("satellites"), list):
        captures_raw["satellites"] = tuple(captures_raw["satellites"])
    captures = CaptureSpec(**captures_raw)
    if captures.count < 1 or captures.interval_s < 0 or captures.start_s < 0:
        raise ScenarioError(f"{source}: captures need count >= 1, interval_s >= 0, start_s >= 0")
    if captures.per_orbit is not None and not captures.per_orbit > 0:
        raise ScenarioError(f"{source}: captures.per_orbit must be > 0, got {captures.per_orbit}")
    if captures.sample_tiles < 1:
        raise ScenarioError(f"{source}: captures.sample_tiles must be >= 1")
    try:
        sensor = get_sensor(captures.sensor)
        network = NetworkResources.from_dict(_checked(top.get("network"), NETWORK_KEYS,
                                                      f"{source}: network"), f"{source}: network")
    except ValueError as err:
        raise ScenarioError(f"{source}: {err}") from err
    tile_bytes = 3 * sensor.tile_px ** 2  # one raw RGB uint8 tile, what the model reads
    if network.storage_bytes < tile_bytes:
        raise ScenarioError(f"{source}: network.storage_bytes {network.storage_bytes:g} is smaller "
                            f"than one raw tile ({tile_bytes} B): no satellite could hold a capture")
    model_raw = _checked(top["model"], MODEL_KEYS, f"{source}: model")
    model = ModelSpec(**model_raw)
    model = ModelSpec(resolve_path(model.checkpoint), model.split_index, model.head_placement)
    if model.head_placement not in ("satellite", "ground"):
        raise ScenarioError(f"{source}: model.head_placement must be 'satellite' or 'ground', "
                            f"got {model.head_placement!r}")
    if not isinstance(top["schemes"], list) or not top["schemes"]:
        raise ScenarioError(f"{source}: schemes must be a non-empty list")
    schemes = [_scheme(i, s, source) for i, s in enumerate(top["schemes"])]
    names = [s.name for s in schemes]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{source}: scheme names must be unique, got {names}")
    for where, path in [("model.checkpoint", model.checkpoint)] + [
            (f"schemes[{s.name}].checkpoint", s.checkpoint) for s in schemes if s.checkpoint]:
        if not Path(path).is_file():
            raise ScenarioError(f"{source}: {where} {path!r} does not exist")

    profiles = _checked(top.get("profiles"), PROFILE_KEYS, f"{source}: profiles")
    try:
        sat = get_device(profiles.get("satellite", "jetson_nano")).require_throughput()
        ground = get_device(profiles.get("ground", "a100")).require_throughput()
        event = get_device(profiles["event_driven"]) if profiles.get("event_driven") else None
        if event is not None and not event.event_driven:
            raise ValueError(f"event_driven: {event.name!r} is a dense profile; expected an "
                             f"event-driven one (e.g. cmos45nm, loihi)")
    except ValueError as err:
        raise ScenarioError(f"{source}: profiles: {err}") from err
    name = str(top.get("name", default_name or Path(source).stem))
    return EvalScenario(name=name, orbit=orbit_cfg, images=images, captures=captures, model=model,
                        schemes=schemes, network=network, satellite_profile=sat, ground_profile=ground,
                        event_profile=event,
                        out=str(top.get("out", f"outputs/eval/{name}")),
                        policies=_policies(top.get("policy"), names, source),
                        calibration=_calibration(top.get("calibration"), source), raw=dict(top))


def _policies(raw: Any, options: list[str], source: str) -> list[dict]:
    """The ``policy:`` section (:func:`research.opt.parse_policy_section`; the options are the
    schemes)."""
    try:
        return parse_policy_section(raw, options, f"{source}: policy")
    except ValueError as err:
        raise ScenarioError(str(err)) from None


def _calibration(raw: Any, source: str) -> CalibrationSpec:
    spec = CalibrationSpec(**_checked(raw, CALIBRATION_KEYS, f"{source}: calibration"))
    if spec.split not in ("train", "val"):
        raise ScenarioError(f"{source}: calibration.split {spec.split!r} must be 'train' or 'val' "
                            "(the test split is what captures are answered on)")
    if spec.limit is not None and (isinstance(spec.limit, bool) or not isinstance(spec.limit, int)
                                   or spec.limit < 1):
        raise ScenarioError(f"{source}: calibration.limit must be an integer >= 1, got "
                            f"{spec.limit!r}")
    return spec


def load_scenario(path: str | Path | Sequence[str | Path],
                  overrides: Sequence[str] = ()) -> EvalScenario:
    """Read and validate a scenario: one YAML file, or several merged in order, then dotted
    ``overrides`` (``"captures.count=50"``); see :func:`research.configfile.load_yaml`."""
    raw, source, default_name = load_config_files(path, "scenario file", ScenarioError, overrides)
    return parse_scenario(raw, source=source, default_name=default_name)
