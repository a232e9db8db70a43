"""Flower engine: the same local update as a ClientApp, the same rounds in a ServerApp.

Flower's Simulation Engine (Ray backend) runs one virtual SuperNode per satellite. The ServerApp
drives :class:`~research.fed.rounds.RoundSimulator` exactly as the in-process runner does: the
contact plan decides which satellites take part in a round (and when); only the local updates
travel as Flower messages to the ClientApps, which call :func:`~research.fed.clients.client_update`;
aggregation (ring all-reduce / FedAvg) is the shared code. So both engines give the same head.

With ``secagg.enabled`` the ServerApp never sees an update: each round's numerics run through
Flower's ``SecAggPlusWorkflow`` (every satellite a neighbour of every other, i.e. SecAgg, with
the config's threshold) against ClientApps wrapped in ``secaggplus_mod``. The cohort is the
simulated round's (satellites whose keys and shares reached the ground); members the simulation
drops after that raise in their ``fit``, so the workflow rebuilds their masks from shares, as it
would for a satellite that went silent. The protocol's bytes and round trips are booked by the
simulator (:mod:`research.fed.secure_rounds`), the same for both engines.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from research.fed.aggregate import State
from research.fed.clients import client_update
from research.fed.config import FedConfig
from research.fed.privacy import Privacy
from research.fed.schemes import get_scheme

if TYPE_CHECKING:
    from research.fed.rounds import SecureRound
    from research.fed.runner import RunResult, Setup


class SimulatedDropout(RuntimeError):
    """Raised by a satellite's ``fit`` when the simulated round says its masked update never
    reaches the aggregator (Flower's SecAgg+ then treats it as a dropout)."""


def _partition_mod(msg, ctxt, call_next):
    """Answers the ServerApp's ``query`` with the SuperNode's partition id (any ClientApp)."""
    from flwr.app import Message, MetricRecord, RecordDict

    if msg.metadata.message_type == "query":
        pid = int(ctxt.node_config["partition-id"])
        return Message(RecordDict({"metrics": MetricRecord({"partition-id": pid})}),
                       reply_to=msg)
    return call_next(msg, ctxt)


def make_secure_client_app(cfg: FedConfig, setup: Setup):
    """A ClientApp for secure aggregation: a NumPyClient per satellite whose update Flower's
    ``secaggplus_mod`` masks before it leaves the SuperNode."""
    import torch
    from flwr.client import ClientApp, NumPyClient
    from flwr.client.mod import secaggplus_mod

    privacy = Privacy(cfg.privacy, cfg.train)
    keys = list(setup.initial)
    split = get_scheme(cfg.scheme).trains_across_cut(cfg)

    class Satellite(NumPyClient):
        def __init__(self, pid: int) -> None:
            self.pid = pid

        def fit(self, parameters, config):
            if int(config["drop"]):
                raise SimulatedDropout(f"satellite {setup.clients[self.pid].sat}: its masked "
                                       "update does not reach the aggregator this round")
            head = {k: torch.as_tensor(a) for k, a in zip(keys, parameters, strict=True)}
            new = client_update(setup.template, setup.data, setup.clients[self.pid], self.pid,
                                head, cfg.train, int(config["round"]), privacy,
                                cohort=int(config["cohort"]), split=split)
            return [new[k].numpy() for k in keys], int(config["weight"]), {}

    def client_fn(context):
        return Satellite(int(context.node_config["partition-id"])).to_client()

    return ClientApp(client_fn=client_fn, mods=[_partition_mod, secaggplus_mod])


def _secure_round(grid, context, node_of: dict[str, int], rnd: SecureRound) -> State:
    """One round of Flower's SecAgg+ workflow over ``rnd.cohort``; the survivors' weighted mean."""
    import flwr.compat.common.recorddict_compat as compat
    import torch
    from flwr.app import ConfigRecord
    from flwr.common import FitIns, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server import ServerConfig
    from flwr.server.compat.grid_client_proxy import GridClientProxy
    from flwr.server.compat.legacy_context import LegacyContext
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import SecAggPlusWorkflow
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

    keys = list(rnd.head)
    weight = dict(zip(rnd.cohort, rnd.weights, strict=True))
    proxies = {s: GridClientProxy(node_of[s], grid, context.run_id) for s in rnd.cohort}
    got: dict = {}

    class Cohort(FedAvg):
        """The simulated round's cohort, told who drops; keeps the unmasked mean."""

        def configure_fit(self, server_round, parameters, client_manager):
            return [(proxies[s], FitIns(parameters, {
                "round": rnd.round, "cohort": rnd.trained, "weight": int(weight[s]),
                "drop": int(s not in rnd.survivors)})) for s in rnd.cohort]

        def aggregate_fit(self, server_round, results, failures):
            got["parameters"] = results[0][1].parameters if results else None
            return got["parameters"], {}

    legacy = LegacyContext(context, config=ServerConfig(num_rounds=1), strategy=Cohort())
    legacy.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {Key.CURRENT_ROUND: rnd.round})
    legacy.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
        ndarrays_to_parameters([rnd.head[k].numpy() for k in keys]), True)
    SecAggPlusWorkflow(num_shares=1.0, reconstruction_threshold=rnd.threshold,
                       max_weight=float(max(rnd.weights)))(grid, legacy)
    if got.get("parameters") is None:
        raise RuntimeError(f"round {rnd.round}: Flower's SecAgg+ workflow halted (see its log)")
    arrays = parameters_to_ndarrays(got["parameters"])
    return {k: torch.as_tensor(a, dtype=rnd.head[k].dtype).reshape(rnd.head[k].shape)
            for k, a in zip(keys, arrays, strict=True)}


def make_client_app(cfg: FedConfig, setup: Setup):
    """A ClientApp whose SuperNode ``partition-id`` is a satellite's index, or (one SuperNode per
    orbital plane) whose train messages list the satellites of its plane to update: one
    ``arrays-<index>`` record per satellite comes back."""
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()
    privacy = Privacy(cfg.privacy, cfg.train)
    split = get_scheme(cfg.scheme).trains_across_cut(cfg)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        return Message(RecordDict({"metrics": MetricRecord({"partition-id": pid})}),
                       reply_to=msg)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        config = msg.content["config"]
        head = msg.content["arrays"].to_torch_state_dict()
        r, cohort = int(config["round"]), int(config["cohort"])
        pids = [int(i) for i in config["satellites"]]
        content: dict = {"metrics": MetricRecord({"partition-id":
                                                  int(context.node_config["partition-id"])})}
        for pid in pids:
            new = client_update(setup.template, setup.data, setup.clients[pid], pid, head,
                                cfg.train, r, privacy, cohort=cohort, split=split)
            content[f"arrays-{pid}"] = ArrayRecord.from_torch_state_dict(new)
        return Message(RecordDict(content), reply_to=msg)

    return app


def node_groups(setup: Setup, nodes: str) -> list[list[int]]:
    """Satellite indices each SuperNode serves: one each (``satellite``) or the satellites of
    one orbital plane (``plane``: Flower's in-memory link state scans every stored message for
    every node, so its message handling grows as the square of the SuperNodes; 1,584 of them
    did not finish a round's messages in 18 minutes)."""
    if nodes == "satellite":
        return [[i] for i in range(len(setup.clients))]
    if nodes == "plane":
        planes: dict[int, list[int]] = {}
        for i, c in enumerate(setup.clients):
            planes.setdefault(c.plane, []).append(i)
        return [planes[p] for p in sorted(planes)]
    raise ValueError(f"flower nodes must be 'satellite' or 'plane', got {nodes!r}")


def make_server_app(cfg: FedConfig, setup: Setup, out: dict, *, resume: bool = True,
                    max_rounds: int | None = None, nodes: str = "satellite"):
    """A ServerApp that runs the rounds and leaves the :class:`RunResult` in ``out["result"]``
    (resuming from ``cfg.out_dir``'s checkpoints and stopping early as :func:`run` does);
    ``nodes``: what one SuperNode stands for (:func:`node_groups`)."""
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
    from flwr.serverapp import Grid, ServerApp

    from research.fed.runner import run

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        groups = node_groups(setup, nodes)
        ids = _wait_for_nodes(grid, len(groups))
        replies = grid.send_and_receive(
            [Message(RecordDict(), dst_node_id=n, message_type="query") for n in ids])
        node_of_group = {int(m.content["metrics"]["partition-id"]): m.metadata.src_node_id
                         for m in replies}
        node_of = {i: node_of_group[g] for g, members in enumerate(groups) for i in members}
        index = {c.sat: i for i, c in enumerate(setup.clients)}

        def trainer(round_idx: int, head: State, sats: list[str]) -> dict[str, State]:
            per_node: dict[int, list[int]] = {}
            for s in sats:
                per_node.setdefault(node_of[index[s]], []).append(index[s])
            msgs = [Message(RecordDict({"arrays": ArrayRecord.from_torch_state_dict(head),
                                        "config": ConfigRecord({"round": round_idx,
                                                              "cohort": len(sats),
                                                              "satellites": pids})}),
                            dst_node_id=node, message_type="train")
                    for node, pids in per_node.items()]
            got = {}
            for m in grid.send_and_receive(msgs):
                if m.has_error():
                    raise RuntimeError(f"Flower client failed: {m.error}")
                for key in m.content.array_records:
                    if key.startswith("arrays-"):
                        pid = int(key.removeprefix("arrays-"))
                        got[setup.clients[pid].sat] = m.content[key].to_torch_state_dict()
            return got

        if cfg.secagg.enabled:
            sats = {c.sat: node_of[i] for i, c in enumerate(setup.clients) if i in node_of}
            out["result"] = run(cfg, setup=setup, resume=resume, max_rounds=max_rounds,
                                secure_trainer=lambda rnd: _secure_round(grid, context, sats,
                                                                         rnd))
            return
        out["result"] = run(cfg, setup=setup, resume=resume, max_rounds=max_rounds,
                            trainer=trainer)

    return app


def _wait_for_nodes(grid, n: int, timeout_s: float = 300.0) -> list[int]:
    """SuperNodes register while the ServerApp starts: wait until all ``n`` are there."""
    t0 = time.monotonic()
    while True:
        ids = list(grid.get_node_ids())
        if len(ids) >= n:
            return ids
        if time.monotonic() - t0 > timeout_s:
            raise RuntimeError(f"only {len(ids)} of {n} Flower SuperNodes registered")
        time.sleep(0.2)


def run_flower(cfg: FedConfig, setup: Setup | None = None, *, cpus_per_client: float = 1.0,
               resume: bool = True, max_rounds: int | None = None,
               nodes: str = "satellite") -> RunResult:
    """Run (or resume) ``cfg`` on Flower's Simulation Engine (Ray); returns the same result as
    :func:`~research.fed.runner.run`, with the same checkpoints, for any scheme and topology.
    ``nodes``: one SuperNode per ``satellite`` or per orbital ``plane`` (large shells; secure
    aggregation needs one per satellite)."""
    from flwr.simulation import run_simulation

    from research.fed.runner import prepare

    setup = setup or prepare(cfg)
    if cfg.secagg.enabled and nodes != "satellite":
        raise ValueError("secure aggregation on Flower needs one SuperNode per satellite "
                         "(nodes='satellite'): each masks its own update")
    groups = node_groups(setup, nodes)
    out: dict = {}
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    run_simulation(
        server_app=make_server_app(cfg, setup, out, resume=resume, max_rounds=max_rounds,
                                   nodes=nodes),
        client_app=(make_secure_client_app if cfg.secagg.enabled else make_client_app)(cfg,
                                                                                      setup),
        num_supernodes=len(groups),
        backend_config={"client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
                        "init_args": {"num_cpus": 1, "include_dashboard": False}},
    )
    if "result" not in out:
        raise RuntimeError("the Flower ServerApp ended without a result (see its log above)")
    return out["result"]
