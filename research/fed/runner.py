"""In-process federated runner: deterministic with a seed, checkpointed every round, resumable.

``run(cfg)`` builds the contact plan, the split model, the features and the clients, then runs
rounds until ``train.rounds`` (or the plan's horizon). After every round the whole state goes to
``out_dir/round_XXXX.pt`` with the round's network sends; a later call with the same config
resumes from the latest file, books the earlier rounds' sends again (network bookings persist
across rounds) and ends exactly where an uninterrupted run ends (local updates are seeded by run,
round, client).
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from encoders.base import IdentityLink
from research.atomic import atomic_save
from research.fed.aggregate import State
from research.fed.clients import (
    Dataset,
    SatelliteClient,
    accuracy,
    build_model,
    exchanged_state,
    load_dataset,
    make_clients,
    trained_module,
)
from research.fed.config import FedConfig
from research.fed.cost import Costs, cut_gradient, measure_costs
from research.fed.network import FedNetwork
from research.fed.rounds import (
    PRELOADED,
    HorizonReached,
    RoundSimulator,
    RunState,
    SecureTrainer,
    Trainer,
)
from research.models import SplitViT
from research.orbit import ContactPlan
from research.orbit import load_config as load_orbit_config
from research.orbit import parse_config as parse_orbit_config
from research.records import write_rows

CKPT = re.compile(r"round_(\d{4})\.pt$")


@dataclass
class Setup:
    """What every scheme of one scenario shares: plan, model, features, clients, costs."""

    plan: ContactPlan
    template: nn.Module
    initial: State
    data: Dataset
    clients: list[SatelliteClient]
    costs: Costs


def build_plan(scenario: str | dict) -> ContactPlan:
    """Contact plan of an orbit scenario (a YAML path or an inline mapping)."""
    pc = (load_orbit_config(scenario) if isinstance(scenario, str)
          else parse_orbit_config(scenario, "<fed scenario>"))
    return pc.build()


def prepare(cfg: FedConfig, plan: ContactPlan | None = None, cache_dir: str | None = None
            ) -> Setup:
    """Build (or reuse) everything but the scheme."""
    plan = plan if plan is not None else build_plan(cfg.scenario)
    model = build_model(cfg.model)
    data = load_dataset(model, cfg.model, cfg.data, cache_dir)
    template = trained_module(model, cfg.model.trainable)
    initial = exchanged_state(template)
    clients = make_clients(plan.satellites, [plan.plane_of(s) for s in plan.satellites],
                           data.train_y, cfg.data, class_weights=_captured(cfg, plan))
    return Setup(plan, template, initial, data, clients,
                 measure_costs(model, initial, data.sample_tokens, _sample_gradient(model, data)))


def _sample_gradient(model: SplitViT, data: Dataset) -> torch.Tensor | None:
    """The cut's gradient on the first 32 training images (real images and labels) under the
    initial model: what the gradient link's payload is measured on (split learning only)."""
    if isinstance(model.gradient_link, IdentityLink):
        return None
    return cut_gradient(model, data.train_x[:32], data.train_y[:32])


def _captured(cfg: FedConfig, plan: ContactPlan) -> np.ndarray | None:
    """Per-satellite class weights of a ground-track partition (None for the others), in the
    plan's satellite order."""
    if cfg.data.partition != "ground_track":
        return None
    from research.fed.ground_track import captured_class_weights

    scenario = (load_orbit_config(cfg.scenario) if isinstance(cfg.scenario, str)
                else parse_orbit_config(cfg.scenario, "<fed scenario>"))
    names, weights = captured_class_weights(scenario, cfg.data.capture_window_s)
    if names != plan.satellites:
        raise ValueError(f"the scenario {scenario.name!r} names satellites {names[:3]}..., the "
                         f"contact plan {plan.satellites[:3]}...: build the plan from the scenario")
    return weights


@dataclass
class RunResult:
    """Ledger rows, the final released head (the average under ``train.ema_decay``), and
    per-satellite energy ``[compute_j, transmit_j]``."""

    rows: list[dict]
    head: State
    energy: dict[str, list[float]]
    initial_accuracy: float
    out_dir: Path


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    files = sorted(p for p in Path(out_dir).glob("round_*.pt") if CKPT.search(p.name))
    return files[-1] if files else None


def _latest_readable(out_dir: Path) -> tuple[Path, dict] | None:
    """The newest round checkpoint that loads, with its contents; an unreadable one (a copy cut
    short outside this code, a damaged disk) is named in a warning and the previous round used."""
    files = sorted(p for p in out_dir.glob("round_*.pt") if CKPT.search(p.name))
    for path in reversed(files):
        try:
            return path, torch.load(path, weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unreadable file: fall back, and say so
            warnings.warn(f"cannot read {path} ({type(err).__name__}: {err}); resuming from the "
                          "round before it", stacklevel=3)
    return None


def _fingerprint(cfg: FedConfig) -> str:
    d = cfg.to_dict()
    d.pop("out_dir")
    if not d["secagg"]["enabled"]:  # runs from before secure aggregation still resume
        d.pop("secagg")
    if d["privacy"]["adjacency"] == "zero_out":  # and those from before the adjacency option
        d["privacy"].pop("adjacency")
    if d["model"]["trainable"] == "head":  # and those from before trainable cuts
        d["model"].pop("lora_rank")
    if d["model"]["gradient_link"] == "identity":  # and those from before gradient links
        d["model"].pop("gradient_link")
    for key in ("encoder_lr", "embed_lr"):
        if d["train"][key] is None:
            d["train"].pop(key)
    for key, plain in (("server_lr", 1.0), ("server_momentum", 0.0)):  # and before FedAvgM
        d["train"][key] = float(d["train"][key])  # 2 from --set and 2.0 from YAML: one run
        if d["train"][key] == plain:
            d["train"].pop(key)
    d["train"]["ema_decay"] = float(d["train"]["ema_decay"])
    if not d["train"]["ema_decay"]:  # and before averaged heads
        d["train"].pop("ema_decay")
    if d["data"]["partition_seed"] is None:  # and those from before partition seeds
        d["data"].pop("partition_seed")
    d["data"]["val_fraction"] = float(d["data"]["val_fraction"])
    if not d["data"]["val_fraction"]:  # and those from before validation splits
        d["data"].pop("val_fraction")
    if d["data"]["partition"] != "ground_track":  # and those from before ground-track partitions
        d["data"].pop("capture_window_s")
    if d["topology"] != "gossip":  # and those from before gossip
        d["comm"].pop("gossip_tol")
    if d["privacy"]["epsilon"] is None:  # a target epsilon calibrates the noise to the rounds
        d["train"].pop("rounds")
    return json.dumps(d, sort_keys=True, default=str)


def simulator_class(cfg: FedConfig) -> type:
    """The engine of ``cfg.scheme``: federated rounds, or the scheme's own (``simulator``)."""
    import importlib

    from research.fed.schemes import get_scheme

    path = get_scheme(cfg.scheme).simulator
    if path is None:
        return RoundSimulator
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def run(cfg: FedConfig, *, setup: Setup | None = None, resume: bool = True,
        max_rounds: int | None = None, trainer: Trainer | None = None,
        secure_trainer: SecureTrainer | None = None) -> RunResult:
    """Run (or resume) ``cfg``; ``max_rounds`` stops early (the next call continues).

    ``trainer`` replaces the in-process local updates (the Flower engine passes its own);
    ``secure_trainer`` the local updates and their secure aggregation (Flower's SecAgg+).
    """
    setup = setup or prepare(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net = FedNetwork(setup.plan, cfg.faults, cfg.network)
    sim = simulator_class(cfg)(cfg, net, setup.clients, setup.costs, setup.template, setup.data,
                               trainer, secure_trainer)
    acc0 = accuracy(setup.template, setup.initial, setup.data.test_x, setup.data.test_y)
    state = RunState(round=0, t=0.0, holder=PRELOADED, head=setup.initial)
    found = _latest_readable(out) if resume else None
    if found is not None:
        ckpt, saved = found
        if saved["fingerprint"] != _fingerprint(cfg):
            raise ValueError(f"{ckpt} was written by a different config; use another out_dir "
                             "or resume=False")
        state = RunState(**saved["state"])
        for r in range(1, state.round + 1):  # the network as the skipped rounds left it
            past = out / f"round_{r:04d}.pt"
            if not past.is_file():
                raise ValueError(f"cannot resume from {ckpt}: {past.name} (its network "
                                 "bookings) is missing; use another out_dir or resume=False")
            try:
                net.replay(torch.load(past, weights_only=True)["network_log"])
            except Exception as err:  # noqa: BLE001 - name the file, whatever broke it
                raise ValueError(f"cannot resume from {ckpt}: {past} is unreadable ({err}); use "
                                 "another out_dir or resume=False") from None
    target = cfg.train.rounds if max_rounds is None else min(cfg.train.rounds, max_rounds)
    # rounds of a large shell take minutes: a bar on a terminal (off when stderr is not a TTY)
    bar = tqdm(total=target, initial=state.round, desc=f"{cfg.name} rounds", unit="round",
               disable=None, leave=False)
    while state.round < target:
        try:
            state = sim.run_round(state)
        except HorizonReached as err:
            warnings.warn(f"{cfg.name}: stopping after round {state.round}: {err} (plan horizon "
                          f"{setup.plan.horizon_s:.0f} s)", stacklevel=2)
            break
        bar.update(1)
        bar.set_postfix(acc=f"{state.rows[-1]['accuracy']:.3f}", sim_h=f"{state.t / 3600:.2f}")
        saved = asdict(state)
        for key in ("t", "rows", "energy"):  # plain floats (numpy scalars do not load safely)
            saved[key] = json.loads(json.dumps(saved[key]))
        atomic_save({"state": saved, "fingerprint": _fingerprint(cfg),
                     "network_log": net.take_log()}, out / f"round_{state.round:04d}.pt")
    bar.close()
    write_rows(state.rows, out, "ledger", meta={"name": cfg.name, "config": cfg.to_dict(),
                                                "network_use": net.summary()})
    return RunResult(state.rows, state.released, state.energy, acc0, out)


def time_to_accuracy(rows: list[dict], target: float) -> float | None:
    """Simulated seconds until the ledger first reaches ``target`` accuracy (None: never)."""
    for r in rows:
        if r["accuracy"] >= target:
            return float(r["t_end_s"])
    return None
