"""Federated fine-tuning config: typed sections read from YAML, strict about keys and values.

A typo'd key is an error naming the key, the closest valid one and the section, so a run never
silently falls back to a default. See ``experiments/fed/*.yaml``. ``network`` takes the keys of
:class:`research.orbit.network.NetworkResources` (default ``capacity: exclusive``: transfers
book link directions, transmitters and antennas first come first served; ``capacity:
unlimited`` is the earlier no-contention model).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from research.configfile import build_section, check_keys, load_config_files
from research.orbit.network import NetworkResources
from research.paths import DEFAULT_FOUNDATION, resolve_path

FAULT_KINDS = ("station_outage", "isl_failure")


class FedConfigError(ValueError):
    """A federated-run config that does not describe a valid run."""


@dataclass
class ModelConfig:
    """The split ViT: backbone preset, foundation weights, what trains, the link at the cut.

    ``trainable``: ``head`` (``fc_norm`` + classifier on frozen features, the cheap mode) or
    ``split`` (the patch embedding on board, LoRA of rank ``lora_rank`` in every encoder block
    and the head: the encoder changes, so nothing is precomputed; the collaborative scheme
    trains it by split learning, activations down and gradients up every step).
    ``link``: what the activations cross the cut through; ``gradient_link`` (split learning
    only): what their gradient comes back up through, a training-free link (``identity`` is
    float32; ``float16``, ``int8``, ``int4``).
    """

    backbone: str = "satvit_small"
    weights: str | None = DEFAULT_FOUNDATION
    trainable: str = "head"
    link: str = "identity"
    num_classes: int = 10
    lora_rank: int = 8
    gradient_link: str = "identity"


@dataclass
class DataConfig:
    """Where images come from and how they are dealt to satellites (``root`` None: embedded).

    ``seed`` fixes the image subset and the train/test split (hence the features);
    ``partition_seed`` (default: ``seed``) how the training images are dealt, so repeated runs can
    vary the partition on the same features and test set.

    ``val_fraction`` (default 0: none) holds that fraction of the training images out of every
    satellite's data, stratified, as a validation set on the ground: rounds then report
    ``val_accuracy`` beside the test ``accuracy``, so settings can be chosen without the test set.

    ``partition``: ``dirichlet`` (label skew, ``alpha``), ``iid``, ``shards``, or ``ground_track``:
    each satellite holds what it imaged in daylight over the first ``capture_window_s`` of the
    scenario (:mod:`research.fed.ground_track`; about one orbit by default).
    """

    root: str | None = None
    max_images: int | None = None
    test_fraction: float = 0.2
    val_fraction: float = 0.0
    partition: str = "dirichlet"
    alpha: float = 0.5
    seed: int = 0
    partition_seed: int | None = None
    capture_window_s: float = 5400.0

    def describe_partition(self) -> str:
        """How the images are dealt, for captions: ``dirichlet(alpha=0.5)``, ``iid``, ..."""
        if self.partition == "dirichlet":
            return f"dirichlet(alpha={self.alpha})"
        if self.partition == "ground_track":
            return (f"ground track (what each satellite imaged in daylight over the first "
                    f"{self.capture_window_s:g} s)")
        return self.partition


@dataclass
class TrainConfig:
    """Rounds and the local optimiser (SGD, state reset each round so FedAvg stays stateless).

    ``encoder_lr`` and ``embed_lr`` (``model.trainable: split``): the learning rates of the LoRA
    adapters and of the patch embedding (None: ``lr``). A fresh head's early gradients reach the
    embedding large: at the head's rate they wreck the foundation's features (EuroSAT subset, one
    epoch: 48% against 81% for the head alone), at a hundredth of it they do not.

    ``server_lr`` and ``server_momentum``: the server optimiser applied to each round's average
    (FedAvgM, :func:`research.fed.aggregate.server_step`; 1 and 0: plain FedAvg). Its velocity is
    kept across rounds in the run state. Under satellite-level DP it is post-processing: a
    clipped, noised average is a small, noisy step, which momentum accumulates over rounds.

    ``ema_decay``: the model a run evaluates, reports and returns is the exponential moving
    average of the rounds' heads with this decay (:func:`research.fed.aggregate.ema_step`; 0: the
    last head). Training continues from the last head; the average is kept in the run state.
    Under DP it is post-processing of released heads: it averages their noise away at no
    privacy cost.
    """

    rounds: int = 30
    local_epochs: int = 1
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    seed: int = 0
    encoder_lr: float | None = None
    embed_lr: float | None = None
    server_lr: float = 1.0
    server_momentum: float = 0.0
    ema_decay: float = 0.0


@dataclass
class CommConfig:
    """The collaborative scheme's two downlink strategies (switch one off for an ablation) and
    round rules. (Ring or star aggregation is the run's ``topology``, for every scheme.)

    ``reuse_features``: the encoder is frozen, so a satellite keeps the features of round 1 and
    later rounds skip re-embedding / re-encoding and their transfers (same rule for both schemes).
    ``round_deadline_s``: satellites not done by then are dropped from the round (None: wait).
    ``gossip_tol`` (``topology: gossip``): gossip steps until any disagreement between the
    satellites' models has shrunk by this factor (fewer steps, fewer bytes, looser consensus).
    """

    intra_orbit_sharing: bool = True
    maxflow: bool = True
    reuse_features: bool = True
    round_deadline_s: float | None = None
    backhaul_s: float = 0.05
    gossip_tol: float = 1e-3


@dataclass
class ProfilesConfig:
    """Device profiles (names in :mod:`devices`) of satellites and the ground."""

    satellite: str = "jetson_nano"
    ground: str = "a100"


@dataclass
class PrivacyConfig:
    """Differential privacy of the released head (see :mod:`research.fed.privacy`).

    ``level``: ``none``; ``satellite`` (DP-FedAvg: a whole satellite's shard is the unit, each
    update clipped to ``clip`` and noised, aggregation unweighted); ``image`` (DP-SGD on board:
    one image is the unit, per-image gradients clipped to ``clip``). Give ``epsilon`` (the target
    over ``train.rounds`` at ``delta``; the noise is calibrated to it) or ``noise_multiplier``.
    ``adjacency`` (satellite level): ``zero_out`` (one satellite's update replaced by zero) or
    ``replace`` (by any other update: twice the sensitivity, twice the noise for an epsilon). A
    given ``noise_multiplier`` is always the applied noise's std over ``clip`` (the ledger's
    ``dp_noise_multiplier``); under ``replace`` it is accounted as half that.
    """

    level: str = "none"
    epsilon: float | None = None
    delta: float = 1e-5
    clip: float = 1.0
    noise_multiplier: float | None = None
    adjacency: str = "zero_out"


@dataclass
class SecAggConfig:
    """Secure aggregation of the updates (see :mod:`research.fed.secure_rounds`).

    ``enabled``: the aggregator (the ground, a ring neighbour, the ring's root) sees only masked
    updates; the protocol's keys, shares and unmasking travel on the network. ``bits``: the
    fixed point modulus (64 or 32) with ``frac_bits`` fraction bits; ``threshold``: the fraction
    of the round's cohort whose shares unmask it (t = floor(threshold * n) + 1, a majority at
    least: fewer would let a server that claims dropouts unmask single updates);
    ``stage_timeout_s``: how long the coordinator waits for keys or shares before it goes on
    without the missing satellites (Flower's ``timeout``; None: until all are in or the round's
    deadline).
    """

    enabled: bool = False
    bits: int = 64
    frac_bits: int = 32
    threshold: float = 0.5
    stage_timeout_s: float | None = None


@dataclass
class Fault:
    """A station outage or ISL failure over ``[start_s, end_s)``."""

    kind: str
    nodes: list[str]
    start_s: float
    end_s: float


@dataclass
class FedConfig:
    """A whole federated run; ``scenario`` is an orbit YAML path or an inline orbit mapping.

    ``scheme`` and ``topology`` name entries of :mod:`research.fed.schemes` and
    :mod:`research.fed.topologies` (two separate axes).
    """

    scenario: Any
    name: str = "fed"
    scheme: str = "collaborative"
    topology: str = "ring"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    comm: CommConfig = field(default_factory=CommConfig)
    profiles: ProfilesConfig = field(default_factory=ProfilesConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    secagg: SecAggConfig = field(default_factory=SecAggConfig)
    faults: list[Fault] = field(default_factory=list)
    network: NetworkResources = field(default_factory=NetworkResources)
    out_dir: str = "outputs/fed"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> FedConfig:
        """A copy with top-level fields or ``"section.key"`` values changed."""
        raw = self.to_dict()
        for key, value in changes.items():
            section, _, sub = key.partition(".")
            if sub:
                raw[section][sub] = value
            else:
                raw[section] = value
        return parse_config(raw, "<replace>")


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig, "comm": CommConfig,
            "profiles": ProfilesConfig, "privacy": PrivacyConfig,
            "secagg": SecAggConfig}


def _keys(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def _checked(d: Any, cls: type, where: str) -> dict:
    return check_keys(d, _keys(cls), where, FedConfigError)


def _fault(d: Any, where: str) -> Fault:
    f = _checked(d, Fault, where)
    if f.get("kind") not in FAULT_KINDS:
        raise FedConfigError(f"{where}: kind must be one of {list(FAULT_KINDS)}, got "
                             f"{f.get('kind')!r}")
    nodes = f.get("nodes")
    nodes = [nodes] if isinstance(nodes, str) else [] if nodes is None else nodes
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
        raise FedConfigError(f"{where}: nodes must be a node name or a list of names, got "
                             f"{f.get('nodes')!r}")
    need = 1 if f["kind"] == "station_outage" else 2
    if len(nodes) != need:
        raise FedConfigError(f"{where}: {f['kind']} needs {need} node(s) in 'nodes', got {nodes}")
    for key in ("start_s", "end_s"):
        v = f.get(key, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise FedConfigError(f"{where}: {key} must be a number of seconds, got {v!r}")
    start, end = float(f.get("start_s", 0.0)), float(f.get("end_s", float("inf")))
    if not end > start >= 0:
        raise FedConfigError(f"{where}: need 0 <= start_s < end_s, got {start}, {end}")
    return Fault(f["kind"], nodes, start, end)


def _validate(cfg: FedConfig, source: str) -> None:
    def bad(msg: str) -> FedConfigError:
        return FedConfigError(f"fed config {source}: {msg}")

    from research.fed.schemes import get_scheme  # the registries sit above this module
    from research.fed.topologies import get_topology

    try:
        scheme, topology = get_scheme(cfg.scheme), get_topology(cfg.topology)
    except ValueError as err:
        raise bad(str(err)) from None
    if scheme.topologies is not None and topology.name not in scheme.topologies:
        raise bad(f"scheme {scheme.name!r} cannot use topology {topology.name!r}; it can use "
                  f"{list(scheme.topologies)}")
    if cfg.secagg.enabled and not topology.secure_aggregation:
        raise bad(f"topology {topology.name!r} cannot run under secagg: pairwise masks cancel "
                  "only in sums over every member, and it mixes partial averages")
    if not 0 < cfg.comm.gossip_tol < 1:
        raise bad(f"comm.gossip_tol must be in (0, 1), got {cfg.comm.gossip_tol}")
    _validate_trainable(cfg, scheme, bad)
    t = cfg.train
    if t.rounds < 1 or t.local_epochs < 1 or t.batch_size < 1:
        raise bad("train.rounds, train.local_epochs and train.batch_size must be >= 1")
    if not 0 < t.lr < math.inf or not 0 <= t.momentum < 1:
        raise bad(f"train.lr must be a finite number > 0 and train.momentum in [0, 1), got "
                  f"{t.lr}, {t.momentum}")
    if not 0 < t.server_lr < math.inf or not 0 <= t.server_momentum < 1:
        raise bad(f"train.server_lr must be a finite number > 0 and train.server_momentum in "
                  f"[0, 1), got {t.server_lr}, {t.server_momentum}")
    if (t.server_lr, t.server_momentum) != (1.0, 0.0) and scheme.simulator is not None:
        raise bad(f"train.server_lr and train.server_momentum act on federated averages; scheme "
                  f"{scheme.name!r} runs its own engine without them")
    if (t.server_lr, t.server_momentum) != (1.0, 0.0) and topology.name == "gossip":
        raise bad("train.server_lr and train.server_momentum need one released average a round "
                  "(topology ring or star); gossip leaves every satellite its own copy")
    if not 0 <= t.ema_decay < 1:
        raise bad(f"train.ema_decay must be in [0, 1), got {t.ema_decay}")
    if t.ema_decay and scheme.simulator is not None:
        raise bad(f"train.ema_decay averages federated rounds' heads; scheme {scheme.name!r} "
                  "runs its own engine without it")
    if t.ema_decay and topology.name == "gossip":
        raise bad("train.ema_decay needs one released head a round (topology ring or star); "
                  "gossip leaves every satellite its own copy")
    for key in ("encoder_lr", "embed_lr"):
        v = getattr(t, key)
        if v is not None and not 0 < v < math.inf:
            raise bad(f"train.{key} must be a finite number > 0 or null, got {v}")
        if v is not None and cfg.model.trainable == "head":
            raise bad(f"train.{key} is for model.trainable 'split' (only the head trains)")
    d = cfg.data
    if not 0 < d.test_fraction < 1:
        raise bad(f"data.test_fraction must be in (0, 1), got {d.test_fraction}")
    if not 0 <= d.val_fraction < 1:
        raise bad(f"data.val_fraction must be in [0, 1) (a fraction of the training images), "
                  f"got {d.val_fraction}")
    if d.partition not in ("dirichlet", "iid", "shards", "ground_track"):
        raise bad(f"data.partition must be dirichlet, iid, shards or ground_track, got "
                  f"{d.partition!r}")
    if not 0 < d.capture_window_s < math.inf:
        raise bad(f"data.capture_window_s must be a finite number of seconds > 0, got "
                  f"{d.capture_window_s}")
    if d.max_images is not None and d.max_images < 2:
        raise bad(f"data.max_images must be >= 2 or null, got {d.max_images}")
    if d.partition == "dirichlet" and not 0 < d.alpha < math.inf:
        raise bad(f"data.alpha (the Dirichlet concentration) must be a finite number > 0, got "
                  f"{d.alpha}")
    if d.partition_seed is not None and d.partition_seed < 0:
        raise bad(f"data.partition_seed must be >= 0 or null, got {d.partition_seed}")
    if not 0 <= cfg.comm.backhaul_s < math.inf:
        raise bad(f"comm.backhaul_s must be a finite number of seconds >= 0, got "
                  f"{cfg.comm.backhaul_s}")
    dl = cfg.comm.round_deadline_s
    if dl is not None and not dl > 0:
        raise bad(f"comm.round_deadline_s must be > 0 or null, got {dl}")
    _validate_privacy(cfg.privacy, bad)
    sa = cfg.secagg
    if sa.bits not in (32, 64) or not 0 < sa.frac_bits < sa.bits - 1:
        raise bad(f"secagg.bits must be 32 or 64 and 0 < secagg.frac_bits < bits - 1, got "
                  f"{sa.bits}, {sa.frac_bits}")
    if not 0.5 <= sa.threshold < 1:
        raise bad(f"secagg.threshold must be a fraction in [0.5, 1) (t is a majority of the "
                  f"cohort), got {sa.threshold}")
    if sa.stage_timeout_s is not None and not sa.stage_timeout_s > 0:
        raise bad(f"secagg.stage_timeout_s must be > 0 or null, got {sa.stage_timeout_s}")
    if not isinstance(cfg.scenario, (str, dict)):
        raise bad("scenario must be an orbit YAML path or an orbit config mapping")


TRAINABLE = ("head", "split")


def _validate_trainable(cfg: FedConfig, scheme: type, bad: Any) -> None:
    m = cfg.model
    if m.trainable not in TRAINABLE:
        raise bad(f"model.trainable must be one of {list(TRAINABLE)}, got {m.trainable!r}")
    if m.gradient_link != "identity":
        from encoders.registry import link_spec, list_links

        free = [n for n in list_links() if not link_spec(n).learned]
        if m.gradient_link not in free:
            raise bad(f"model.gradient_link must be a training-free link, one of {free}, got "
                      f"{m.gradient_link!r}")
        if m.trainable == "head":
            raise bad("model.gradient_link is for model.trainable 'split' (with the head alone "
                      "no gradient crosses the cut)")
    if m.trainable == "head":
        return
    if not 1 <= m.lora_rank <= 1024:
        raise bad(f"model.lora_rank must be in [1, 1024], got {m.lora_rank}")
    if cfg.comm.reuse_features:
        raise bad("comm.reuse_features must be false with model.trainable 'split': the encoder "
                  "trains, so last round's features are stale")
    own_engine = scheme.simulator is not None  # e.g. centralised: it trains the head only
    if own_engine or cfg.privacy.level != "none" or cfg.secagg.enabled:
        raise bad("model.trainable 'split' runs federated rounds without privacy or secagg "
                  "(got scheme "
                  f"{scheme.name!r}, privacy.level {cfg.privacy.level!r}, secagg.enabled "
                  f"{cfg.secagg.enabled})")


PRIVACY_LEVELS = ("none", "satellite", "image")


def _validate_privacy(p: PrivacyConfig, bad: Any) -> None:
    if p.level not in PRIVACY_LEVELS:
        raise bad(f"privacy.level must be one of {list(PRIVACY_LEVELS)}, got {p.level!r}")
    if p.adjacency not in ("zero_out", "replace"):
        raise bad(f"privacy.adjacency must be zero_out or replace, got {p.adjacency!r}")
    if p.adjacency == "replace" and p.level != "satellite":
        raise bad("privacy.adjacency: replace is for level satellite (DP-SGD's Poisson "
                  "accounting is add/remove)")
    if p.level == "none":
        if p.epsilon is not None or p.noise_multiplier is not None:
            raise bad("privacy.epsilon / privacy.noise_multiplier need privacy.level satellite "
                      "or image (level is 'none')")
        return
    if (p.epsilon is None) == (p.noise_multiplier is None):
        raise bad(f"privacy.level {p.level!r} needs exactly one of privacy.epsilon (a target) "
                  f"and privacy.noise_multiplier, got epsilon={p.epsilon}, "
                  f"noise_multiplier={p.noise_multiplier}")
    if p.epsilon is not None and not 0 < p.epsilon < float("inf"):
        raise bad(f"privacy.epsilon must be a finite number > 0, got {p.epsilon}")
    if p.noise_multiplier is not None and not 0 < p.noise_multiplier < float("inf"):
        raise bad(f"privacy.noise_multiplier must be a finite number > 0, got "
                  f"{p.noise_multiplier}")
    if not 0 < p.delta < 1:
        raise bad(f"privacy.delta must be in (0, 1), got {p.delta}")
    if not p.clip > 0:
        raise bad(f"privacy.clip must be > 0, got {p.clip}")


def parse_config(raw: Any, source: str = "<config>") -> FedConfig:
    """Validate a config mapping (already loaded from YAML)."""
    top = _checked(raw, FedConfig, f"fed config {source} (top level)")
    if "scenario" not in top:
        raise FedConfigError(f"fed config {source}: missing required key 'scenario'")
    kwargs: dict[str, Any] = {k: v for k, v in top.items()
                              if k not in SECTIONS and k not in ("faults", "network")}
    if isinstance(top.get("comm"), dict) and "ring_aggregation" in top["comm"]:
        raise FedConfigError(f"fed config {source}: comm.ring_aggregation is gone: aggregation "
                             "is the run's 'topology' (ring | star | gossip), for every scheme")
    for name, cls in SECTIONS.items():
        values = _checked(top.get(name), cls, f"fed config {source}: {name}")
        kwargs[name] = build_section(cls, values, f"fed config {source}: {name}", FedConfigError)
    for key in ("name", "scheme", "topology", "out_dir"):  # the sections were typed above
        if key in kwargs and not isinstance(kwargs[key], str):
            raise FedConfigError(f"fed config {source}: {key}: {kwargs[key]!r} is not of type str")
    faults = top.get("faults")
    if faults is not None and not isinstance(faults, list):
        raise FedConfigError(f"fed config {source}: faults must be a list of fault mappings, "
                             f"got {faults!r}")
    kwargs["faults"] = [_fault(f, f"fed config {source}: faults[{i}]")
                        for i, f in enumerate(faults or [])]
    where = f"fed config {source}: network"
    try:
        kwargs["network"] = NetworkResources.from_dict(
            _checked(top.get("network"), NetworkResources, where), where)
    except ValueError as err:
        raise FedConfigError(str(err)) from None
    if isinstance(kwargs.get("scenario"), str):
        kwargs["scenario"] = resolve_path(kwargs["scenario"])
    if kwargs["model"].weights:
        kwargs["model"] = replace(kwargs["model"], weights=resolve_path(kwargs["model"].weights))
    cfg = FedConfig(**kwargs)
    _validate(cfg, source)
    return cfg


def load_config(path: str | Path | Sequence[str | Path], overrides: Sequence[str] = ()) -> FedConfig:
    """Read and validate a federated run: one YAML file, or several merged in order, then dotted
    ``overrides`` (``"train.rounds=5"``); see :func:`research.configfile.load_yaml`."""
    raw, source, _ = load_config_files(path, "fed config", FedConfigError, overrides)
    return parse_config(raw, source=source)
