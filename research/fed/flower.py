"""Flower engine: the same local update as a ClientApp, the same rounds in a ServerApp.

Flower's Simulation Engine (Ray backend) runs one virtual SuperNode per satellite. The ServerApp
drives :class:`~research.fed.rounds.RoundSimulator` exactly as the in-process runner does: the
contact plan decides which satellites take part in a round (and when); only the local updates
travel as Flower messages to the ClientApps, which call :func:`~research.fed.clients.client_update`;
aggregation (ring all-reduce / FedAvg) is the shared code. So both engines give the same head.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from research.fed.aggregate import State
from research.fed.clients import client_update
from research.fed.config import FedConfig
from research.fed.privacy import Privacy

if TYPE_CHECKING:
    from research.fed.runner import RunResult, Setup


def make_client_app(cfg: FedConfig, setup: Setup):
    """A ClientApp whose SuperNode ``partition-id`` is the satellite's index."""
    from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    app = ClientApp()
    privacy = Privacy(cfg.privacy, cfg.train)

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        return Message(RecordDict({"metrics": MetricRecord({"partition-id": pid})}),
                       reply_to=msg)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        pid = int(context.node_config["partition-id"])
        head = msg.content["arrays"].to_torch_state_dict()
        r = int(msg.content["config"]["round"])
        new = client_update(setup.template, setup.data, setup.clients[pid], pid, head,
                            cfg.train, r, privacy, cohort=int(msg.content["config"]["cohort"]))
        content = {"arrays": ArrayRecord.from_torch_state_dict(new),
                   "metrics": MetricRecord({"partition-id": pid,
                                            "num-examples": setup.clients[pid].n})}
        return Message(RecordDict(content), reply_to=msg)

    return app


def make_server_app(cfg: FedConfig, setup: Setup, out: dict, *, resume: bool = True,
                    max_rounds: int | None = None):
    """A ServerApp that runs the rounds and leaves the :class:`RunResult` in ``out["result"]``
    (resuming from ``cfg.out_dir``'s checkpoints and stopping early as :func:`run` does)."""
    from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
    from flwr.serverapp import Grid, ServerApp

    from research.fed.runner import run

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        ids = _wait_for_nodes(grid, len(setup.clients))
        replies = grid.send_and_receive(
            [Message(RecordDict(), dst_node_id=n, message_type="query") for n in ids])
        node_of = {int(m.content["metrics"]["partition-id"]): m.metadata.src_node_id
                   for m in replies}
        index = {c.sat: i for i, c in enumerate(setup.clients)}

        def trainer(round_idx: int, head: State, sats: list[str]) -> dict[str, State]:
            msgs = [Message(RecordDict({"arrays": ArrayRecord.from_torch_state_dict(head),
                                        "config": ConfigRecord({"round": round_idx,
                                                              "cohort": len(sats)})}),
                            dst_node_id=node_of[index[s]], message_type="train") for s in sats]
            got = {}
            for m in grid.send_and_receive(msgs):
                if m.has_error():
                    raise RuntimeError(f"Flower client failed: {m.error}")
                pid = int(m.content["metrics"]["partition-id"])
                got[setup.clients[pid].sat] = m.content["arrays"].to_torch_state_dict()
            return got

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
               resume: bool = True, max_rounds: int | None = None) -> RunResult:
    """Run (or resume) ``cfg`` on Flower's Simulation Engine (Ray); returns the same result as
    :func:`~research.fed.runner.run`, with the same checkpoints, for any scheme and topology."""
    from flwr.simulation import run_simulation

    from research.fed.runner import prepare

    setup = setup or prepare(cfg)
    out: dict = {}
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    run_simulation(
        server_app=make_server_app(cfg, setup, out, resume=resume, max_rounds=max_rounds),
        client_app=make_client_app(cfg, setup),
        num_supernodes=len(setup.clients),
        backend_config={"client_resources": {"num_cpus": cpus_per_client, "num_gpus": 0.0},
                        "init_args": {"num_cpus": 1, "include_dashboard": False}},
    )
    if "result" not in out:
        raise RuntimeError("the Flower ServerApp ended without a result (see its log above)")
    return out["result"]
