"""Satellite federated fine-tuning over the contact plan, priced in simulated wall-clock time.

Framework-free core (no Lightning): :mod:`config` (YAML), :mod:`network` (contact plan + faults),
:mod:`schedule` (max-flow downlink), :mod:`aggregate` (FedAvg, ring all-reduce), :mod:`cost`
(FLOPs and bytes), :mod:`clients` (shards, head, local update), :mod:`rounds` (one round of the
``collaborative`` or ``onboard`` scheme), :mod:`ledger` (per-round rows), :mod:`runner`
(in-process, checkpointed) and :mod:`flower` (the same rounds on Flower's Simulation Engine).

Typical use::

    from research.fed import load_config, run
    result = run(load_config("experiments/fed/collaborative.yaml"))
    result.rows[-1]["accuracy"], result.rows[-1]["t_end_s"]
"""

from research.fed.aggregate import ring_allreduce, state_bytes, weighted_average
from research.fed.config import FedConfig, FedConfigError, load_config, parse_config
from research.fed.runner import RunResult, Setup, prepare, run, time_to_accuracy
from research.fed.schedule import greedy_assignment, maxflow_assignment

__all__ = [
    "FedConfig", "FedConfigError", "RunResult", "Setup", "greedy_assignment", "load_config",
    "maxflow_assignment", "parse_config", "prepare", "ring_allreduce", "run", "state_bytes",
    "time_to_accuracy", "weighted_average",
]
