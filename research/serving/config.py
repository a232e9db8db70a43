"""``satedge serve`` YAML: model, orbit scenario, nodes, workload, placement, network, evaluation.

Every section is a mapping with fixed keys; an unknown key is an error that names it, suggests
the closest valid key and lists the valid ones. See ``experiments/serving/multitask.yaml``.
``network`` takes the keys of :class:`research.orbit.network.NetworkResources` (default:
``capacity: exclusive``, one downlink transmitter per satellite, one antenna per station;
``capacity: unlimited`` is the earlier no-contention model). ``policy`` (optional): one
``{kind: fixed | greedy | oracle, <params>}`` mapping or a list of them, as in an evaluation
scenario; each picks per request among the schemes (:mod:`research.serving.policy`), its floor
on land-cover accuracy, its deadline the workload's unless given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from encoders.images import IMAGE_FORMATS
from research.configfile import build_section, check_keys, load_config_files, load_yaml, merge
from research.opt import parse_policy_section, policy_class
from research.orbit.config import OrbitConfigError
from research.orbit.network import NetworkResources
from research.paths import DEFAULT_CLASSIFIER
from research.serving.modalities import list_modalities
from research.serving.placement import PlacementProblem, placement_method
from research.serving.services import EmbeddingHead
from research.serving.tasks import TASKS

__all__ = ["ServeConfig", "ServingConfigError", "is_codec_checkpoint", "load_serve_config",
           "parse_serve_config"]


def is_codec_checkpoint(codec: str | None) -> bool:
    """``model.codec`` names a trained codec checkpoint (a ``CodecTask``), not a link name."""
    return codec is not None and codec.endswith(".ckpt")


class ServingConfigError(ValueError):
    """A serving YAML that does not describe a valid run."""


@dataclass
class ModelSection:
    """Encoder and tasks: a checkpoint (real weights) or a backbone preset (random weights);
    ``embedders``: trained embedders of other modalities for that checkpoint
    (``scripts/train_modality_embedders.py``). ``codec``: a link name at the embedder's output
    (``int8``), or a trained codec checkpoint (``CodecTask``, on this encoder) at its own block
    ``k``, which then runs on board with the first ``k`` blocks (``cuts`` must lie after ``k``).
    ``retrieval_answer``: how a retrieval embedding computed on board goes down (``float16``, or
    ``int8`` with a scale; its recall is not re-measured: modelled as the float one)."""

    checkpoint: str | None = DEFAULT_CLASSIFIER
    backbone: str | None = None
    cuts: list[int] = field(default_factory=lambda: [3])
    codec: str | None = "int8"
    embedders: str | None = None
    coarse_train_images: int = 500
    coarse_steps: int = 300
    retrieval_answer: str = "float16"


@dataclass
class NodesSection:
    """Device profiles (names in :mod:`devices`) of satellites and ground servers."""

    satellite_profile: str = "jetson_nano"
    ground_profile: str = "a100"
    satellite_memory_bytes: float | None = None


@dataclass
class WorkloadSection:
    """Captures: which satellites, which tasks together, how often, how big, how urgent;
    ``modality`` is one name or a list given to the sources in turn."""

    sources: int | list[str] = 12
    tasks: list[str] = field(default_factory=lambda: ["landcover", "coarse", "retrieval"])
    rate_hz: float = 0.05
    tiles: int = 256
    modality: str | list[str] = "rgb"

    @property
    def modalities(self) -> list[str]:
        """The modalities captured, in the order the sources take them."""
        return [self.modality] if isinstance(self.modality, str) else list(self.modality)
    deadline_s: float = 300.0
    horizon_s: float = 3600.0
    seed: int = 0


@dataclass
class PlacementSection:
    """Placement solver, its prices and limits (see ``research.serving.placement``); ``method``
    is a name registered there with ``@register_placement`` (``milp``, ``greedy``).
    ``link_volume_fraction``: share of each satellite's downlink / ISL volume per epoch the
    workload may use; ``energy_budget_j``: compute joules per satellite per epoch (scaled by
    ``eclipse_energy_fraction`` in eclipse); ``migration_weight``: price of moving weights."""

    method: str = "milp"
    epoch_s: float = 900.0
    memory_weight: float = 1.0
    max_utilisation: float = 0.7
    neighbourhood_hops: int = 1
    link_volume_fraction: float | None = None
    energy_budget_j: float | None = None
    eclipse_energy_fraction: float = 1.0
    migration_weight: float = 0.0

    def problem_options(self) -> dict:
        """The keyword arguments of :class:`research.serving.placement.PlacementProblem`."""
        return {k: getattr(self, k) for k in (
            "memory_weight", "max_utilisation", "neighbourhood_hops", "link_volume_fraction",
            "energy_budget_j", "eclipse_energy_fraction", "migration_weight")}


@dataclass
class BaselinesSection:
    """Image formats the ground baselines downlink besides raw tiles (``ground_<format>``), at
    ``image_quality``; their bytes per tile and accuracy are measured on the evaluation tiles."""

    image_formats: list[str] = field(default_factory=lambda: ["jpeg"])
    image_quality: int = 90


@dataclass
class EvaluateSection:
    """Real images through the in-process runtime: accuracy per task and recall@k."""

    images: int = 200
    recall_k: list[int] = field(default_factory=lambda: [1, 5, 10])


@dataclass
class ServeConfig:
    """A parsed serving run."""

    name: str
    orbit: dict
    model: ModelSection
    nodes: NodesSection
    workload: WorkloadSection
    placement: PlacementSection
    evaluate: EvaluateSection
    raw: dict
    baselines: BaselinesSection = field(default_factory=BaselinesSection)
    network: NetworkResources = field(default_factory=NetworkResources)
    policies: list[dict] = field(default_factory=list)
    """``policy:`` entries (:mod:`research.serving.policy`): per-request choosers among the
    schemes, each reported as a further scheme."""

    def policy_options(self) -> list[str]:
        """The schemes a ``policy`` may choose among (a ``fixed`` one must name one): the image
        formats only when every modality has 8-bit samples (no ``ground_<format>`` is run
        otherwise)."""
        from research.serving.modalities import get_modality

        images = all(get_modality(m).bytes_per_sample == 1 for m in self.workload.modalities)
        return ["microservice", "onboard_shared", "ground_raw",
                *(f"ground_{f}" for f in self.baselines.image_formats if images)]

    def orbit_config(self):
        """The parsed ``orbit`` section (``file:`` plus inline overrides)."""
        from research.orbit.config import parse_config

        spec = dict(self.orbit)
        source = str(spec.pop("file", "<serve config: orbit>"))
        raw: dict = {}
        if source != "<serve config: orbit>":
            raw = load_yaml(source, "orbit config", ServingConfigError) or {}
        raw = merge(raw, spec)  # inline keys merge over the file's, as overlays do
        try:
            return parse_config(raw, source)
        except OrbitConfigError as err:
            raise ServingConfigError(str(err)) from err

    def build_plan(self):
        """The contact plan of the ``orbit`` section."""
        try:
            return self.orbit_config().build()
        except OrbitConfigError as err:
            raise ServingConfigError(str(err)) from err


_SECTIONS = {"model": ModelSection, "nodes": NodesSection, "workload": WorkloadSection,
             "placement": PlacementSection, "evaluate": EvaluateSection,
             "baselines": BaselinesSection}
TOP_KEYS = ("name", "orbit", *_SECTIONS, "network", "policy")


def _keys(d: Any, valid: tuple[str, ...], where: str) -> dict:
    return check_keys(d, valid, where, ServingConfigError)


def parse_serve_config(raw: Any, source: str = "<config>",
                       default_name: str | None = None) -> ServeConfig:
    """Validate a serving mapping (already loaded from YAML); ``name`` defaults to
    ``default_name``, else the stem of ``source``."""
    top = _keys(raw, TOP_KEYS, f"serve config {source} (top level)")
    if "orbit" not in top:
        raise ServingConfigError(f"serve config {source}: missing required section 'orbit'")
    if not isinstance(top["orbit"], dict):
        raise ServingConfigError(f"serve config {source}: orbit must be a mapping (an orbit "
                                 "scenario, or file: <orbit yaml> plus overrides)")
    if isinstance(top.get("placement"), dict) and "station_antennas" in top["placement"]:
        raise ServingConfigError(f"serve config {source}: placement.station_antennas was replaced "
                                 "by the network section (network: {station_antennas: <n>}, or "
                                 "network: {capacity: unlimited} for no contention)")
    try:
        network = NetworkResources.from_dict(
            _keys(top.get("network"), tuple(f.name for f in fields(NetworkResources)),
                  f"{source}: network"), f"serve config {source}: network")
    except ValueError as err:
        raise ServingConfigError(str(err)) from None
    sections = {}
    for key, cls in _SECTIONS.items():
        valid = tuple(f.name for f in fields(cls))
        sections[key] = build_section(cls, _keys(top.get(key), valid, f"{source}: {key}"),
                                      f"serve config {source}: {key}", ServingConfigError)
    m, w, p = sections["model"], sections["workload"], sections["placement"]
    if (m.checkpoint is None) == (m.backbone is None):
        raise ServingConfigError(f"serve config {source}: model needs exactly one of "
                                 "checkpoint or backbone")
    if is_codec_checkpoint(m.codec) and not Path(m.codec).is_file():
        raise ServingConfigError(f"serve config {source}: model.codec {m.codec!r} is not a file; "
                                 "expected a link name (int8, identity...) or a trained codec "
                                 "checkpoint (a CodecTask .ckpt)")
    if m.retrieval_answer not in EmbeddingHead.ANSWERS:
        raise ServingConfigError(f"serve config {source}: model.retrieval_answer "
                                 f"{m.retrieval_answer!r}; expected one of "
                                 f"{list(EmbeddingHead.ANSWERS)}")
    try:
        placement_method(p.method)
    except ValueError as err:
        raise ServingConfigError(f"serve config {source}: placement.method: {err}") from err
    try:  # the limits' ranges, checked where the problem is defined
        PlacementProblem({}, [], {}, {}, {}, {}, [], {}, 0, epoch_s=p.epoch_s,
                         **p.problem_options())
    except (TypeError, ValueError) as err:
        raise ServingConfigError(f"serve config {source}: placement: {err}") from None
    if (w.sources < 1 if isinstance(w.sources, int) else not w.sources):
        raise ServingConfigError(f"serve config {source}: workload.sources {w.sources!r}; "
                                 "expected a number of sources >= 1 or a non-empty list of "
                                 "satellite names")
    modalities = w.modalities
    unknown = [x for x in modalities if x not in list_modalities()]
    bad_tasks = [t for t in w.tasks if t not in TASKS]
    if bad_tasks or not w.tasks:
        raise ServingConfigError(f"serve config {source}: workload.tasks {w.tasks}: unknown "
                                 f"{bad_tasks}; expected some of {list(TASKS)}")
    if not modalities or unknown:
        raise ServingConfigError(f"serve config {source}: workload.modality {w.modality!r}; "
                                 f"expected one or a list of {list_modalities()}")
    untrained = [x for x in modalities if x not in ("rgb", "ms13")]
    if untrained and not m.embedders:
        raise ServingConfigError(f"serve config {source}: workload.modality {untrained} needs "
                                 "trained embedders: set model.embedders (written by "
                                 "scripts/train_modality_embedders.py)")
    b = sections["baselines"]
    bad = [f for f in b.image_formats if f not in IMAGE_FORMATS or f == "raw"]
    if bad or not 1 <= b.image_quality <= 100:
        raise ServingConfigError(f"serve config {source}: baselines.image_formats {bad} / "
                                 f"image_quality {b.image_quality}; expected formats from "
                                 f"{[f for f in IMAGE_FORMATS if f != 'raw']} (raw is always run) "
                                 "and a quality in 1..100")
    for key, value in (("workload.rate_hz", w.rate_hz), ("workload.horizon_s", w.horizon_s),
                       ("workload.deadline_s", w.deadline_s), ("placement.epoch_s", p.epoch_s)):
        if not 0 < value < math.inf:
            raise ServingConfigError(f"serve config {source}: {key} must be a finite number > 0, "
                                     f"got {value}")
    e = sections["evaluate"]
    for key, value in (("workload.tiles", w.tiles), ("evaluate.images", e.images),
                       ("model.coarse_steps", m.coarse_steps),
                       ("model.coarse_train_images", m.coarse_train_images)):
        if value < 1:
            raise ServingConfigError(f"serve config {source}: {key} must be >= 1, got {value}")
    if not e.recall_k or min(e.recall_k) < 1:
        raise ServingConfigError(f"serve config {source}: evaluate.recall_k must be a list of "
                                 f"integers >= 1, got {e.recall_k}")
    mem = sections["nodes"].satellite_memory_bytes
    if mem is not None and not 0 < mem < math.inf:
        raise ServingConfigError(f"serve config {source}: nodes.satellite_memory_bytes must be a "
                                 f"finite number > 0 or null, got {mem}")
    cfg = ServeConfig(name=str(top.get("name", default_name or Path(source).stem)),
                      orbit=dict(top["orbit"]),
                      raw=dict(top), network=network, **sections)
    where = f"serve config {source}: policy"
    try:
        cfg.policies = parse_policy_section(top.get("policy"), cfg.policy_options(), where)
    except ValueError as err:
        raise ServingConfigError(str(err)) from None
    offline = [p["kind"] for p in cfg.policies if policy_class(p["kind"]).offline]
    if offline and len(set(modalities)) > 1:
        raise ServingConfigError(f"{where}: {offline[0]!r} plans one modality at a time and "
                                 f"would give each of {sorted(set(modalities))} every station; "
                                 "run it with one workload.modality")
    return cfg


def load_serve_config(path: str | Path | Sequence[str | Path],
                      overrides: Sequence[str] = ()) -> ServeConfig:
    """Read and validate a serving run: one YAML file, or several merged in order, then dotted
    ``overrides`` (``"workload.rate_hz=0.1"``); see :func:`research.configfile.load_yaml`."""
    raw, source, default_name = load_config_files(path, "serve config", ServingConfigError, overrides)
    return parse_serve_config(raw, source=source,
                              default_name=default_name)
