"""Worked example (docs/architecture.md, "Adding a federated scheme"): one class, one test.

``Adaptive`` below is everything a new scheme needs. In a real addition it is its own module,
``research/fed/schemes_adaptive.py`` (or a class in ``research/fed/schemes.py``), with the
decorator on the class::

    @register_scheme("adaptive")
    class Adaptive(FedScheme): ...

and a run names it in YAML (``scheme: adaptive``, with any ``topology``). Nothing else changes:
the config validates the name against the registry, the round engine calls ``prepare`` every
round, and the topology, ledger, checkpoints and Flower engine are the same as for every scheme.
Here it is registered only while this module's tests run, so other test modules see the shipped
registry.
"""

from __future__ import annotations

import dataclasses

import pytest

from research.fed import schemes
from research.fed.config import parse_config
from research.fed.ledger import Accounting
from research.fed.runner import run
from research.fed.schedule import drain_to_ground
from research.fed.schemes import Collaborative, FedScheme, Onboard, register_scheme
from tests.fed.conftest import tiny_raw


# ----------------------------------------------------------------- the new file: the scheme
class Adaptive(FedScheme):
    """Each satellite encodes on board when that finishes before its embeddings would reach the
    ground (the max-flow scheduler's what-if; the plan's end if they never would), else it
    takes the collaborative path."""

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.onboard, self.collaborative = Onboard(sim), Collaborative(sim)

    def prepare(self, rnd, need: list[str]) -> None:
        sim, c = self.sim, self.sim.costs
        embedded = {s: sim.compute(Accounting(), s, rnd.start, sim.client(s).n * c.embed_flops)
                    for s in need}
        down = drain_to_ground(rnd.net, embedded, {s: sim.client(s).n * c.cut_bytes for s in need},
                               sharing=sim.cfg.comm.intra_orbit_sharing,
                               maxflow=sim.cfg.comm.maxflow, acct=Accounting())  # books nothing
        local = [s for s in need if rnd.start.t + sim.sat_hw.seconds(
            sim.client(s).n * c.onboard_forward_flops) <= (down[s].t if s in down
                                                           else rnd.net.horizon_s)]
        self.onboard.prepare(rnd, local)
        self.collaborative.prepare(rnd, [s for s in need if s not in local])


# ----------------------------------------------------------------- the new test
@pytest.fixture
def adaptive():
    yield register_scheme("adaptive")(Adaptive)
    schemes._SCHEMES.unregister("adaptive")


def _run(tmp_path, setup, scheme: str) -> list[dict]:
    cfg = parse_config(tiny_raw(out_dir=str(tmp_path / scheme), scheme=scheme))
    return run(cfg, setup=setup).rows


def test_adaptive_runs_learns_and_books(adaptive, tiny_setup, tmp_path):
    res = run(parse_config(tiny_raw(out_dir=str(tmp_path), scheme="adaptive")), setup=tiny_setup)
    assert res.rows[-1]["accuracy"] > res.initial_accuracy
    assert all(r["scheme"] == "adaptive" and r["bytes_model_exchange"] > 0 for r in res.rows)


@pytest.mark.parametrize("encoder", ["cheap", "costly"])
def test_adaptive_takes_the_sooner_path(adaptive, encoder, tiny_setup, tmp_path):
    """A cheap encoder runs on board (the run is the on-board scheme's, row for row); one that
    takes longer than the plan on board (seconds on the ground) goes down (the collaborative scheme's)."""
    setup = tiny_setup
    if encoder == "costly":
        setup = dataclasses.replace(tiny_setup, costs=dataclasses.replace(
            tiny_setup.costs, encode_flops=1e16))
    same = "onboard" if encoder == "cheap" else "collaborative"
    got, want = _run(tmp_path, setup, "adaptive"), _run(tmp_path, setup, same)
    for g, w in zip(got, want, strict=True):
        assert {**g, "scheme": same} == w
