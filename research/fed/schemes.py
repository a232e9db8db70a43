"""Federated schemes: what a round computes and moves before the satellites train.

A scheme is one class registered by name with one decorator::

    @register_scheme("onboard")
    class Onboard(FedScheme): ...

and named in the run's YAML (``scheme: onboard``). The round engine
(:class:`research.fed.rounds.RoundSimulator`) builds one instance per run and calls
:meth:`FedScheme.prepare` once per round with the satellites that need their training inputs;
the scheme books its compute and transfers on the round and reports each satellite with
``rnd.inputs_ready(sat, track)`` or ``rnd.drop(sat, reason)``. Once a satellite has its inputs
and the global model, the engine calls :meth:`FedScheme.train`, which books the local update
(by default: its FLOPs on board) and reports its end. With a trained encoder
(``model.trainable: split``) there is nothing to precompute: on board, the whole model trains
on the satellite; collaborative, each step is split learning across the cut. Where the
trained updates go is the aggregation topology's job (:mod:`research.fed.topologies`), a
separate axis: every scheme runs with every topology it lists in ``topologies`` (None: all of
them), so a baseline is never barred from the topology the proposed scheme uses.

Adding a scheme is one new class here (or in any module imported before the run is built) plus
one test; ``docs/architecture.md`` shows a worked example.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, ClassVar

from research.fed.cost import Costs
from research.fed.ledger import Accounting, Track
from research.fed.network import GROUND
from research.fed.schedule import drain_to_ground
from research.orbit import TransferResult
from research.registry import Registry

if TYPE_CHECKING:
    from research.fed.config import FedConfig
    from research.fed.rounds import RoundSimulator, _Round



class FedScheme:
    """Base class of federated schemes (see the module docstring).

    Attributes:
        name: Registry name (set by :func:`register_scheme`).
        topologies: Topology names this scheme can physically use (None: every one).
        simulator: ``"module:Class"`` of the engine that runs it, for a scheme that is not
            federated rounds (None: :class:`research.fed.rounds.RoundSimulator`).
    """

    name: ClassVar[str] = ""
    topologies: ClassVar[tuple[str, ...] | None] = None
    simulator: ClassVar[str | None] = None

    def __init__(self, sim: RoundSimulator) -> None:
        self.sim = sim
        self.split_learning = self.trains_across_cut(sim.cfg)

    @classmethod
    def trains_across_cut(cls, cfg: FedConfig) -> bool:
        """Whether ``cfg``'s local updates are split learning, crossing the cut every step
        (every engine trains them that way)."""
        return False

    def prepare(self, rnd: _Round, need: list[str]) -> None:
        """Compute and move what ``need``'s satellites train on, from ``rnd.start``."""
        raise NotImplementedError

    def train(self, rnd: _Round, sat: str, tr: Track, done: Callable[[Track | None], None]
              ) -> None:
        """``sat``'s local update from ``tr``; ``done(end)`` when it is over (None: it failed,
        after ``rnd.mark_dropped``). By default its training FLOPs on board."""
        sim = self.sim
        flops = sim.cfg.train.local_epochs * sim.client(sat).n * sim.costs.train_flops
        done(sim.compute(rnd.acct, sat, tr, flops))

    def onboard_param_bytes(self, costs: Costs) -> int:
        """Weights a satellite must hold (checked against its device memory before a run)."""
        return costs.embed_param_bytes + costs.encode_param_bytes + costs.head_param_bytes

    def update_bytes(self, costs: Costs) -> int:
        """Bytes of the update a satellite sends and receives through the topology."""
        return costs.update_bytes


_SCHEMES: Registry[type[FedScheme]] = Registry("federated scheme", name_attr="name")


def register_scheme(name: str) -> Callable[[type[FedScheme]], type[FedScheme]]:
    """Class decorator registering a :class:`FedScheme` under ``name``."""
    return _SCHEMES.register(name)


def list_schemes() -> list[str]:
    return _SCHEMES.names()


def get_scheme(name: str) -> type[FedScheme]:
    """The scheme class registered as ``name`` (ValueError naming the valid ones otherwise)."""
    return _SCHEMES.get(name)


@register_scheme("onboard")
class Onboard(FedScheme):
    """Every satellite runs the whole model on its own images: nothing crosses a link before
    training, at the price of the encoder's FLOPs on board."""

    def prepare(self, rnd: _Round, need: list[str]) -> None:
        sim = self.sim
        for sat in need:
            if sim.trains_encoder:  # the images are the inputs: the forward is in training
                rnd.inputs_ready(sat, rnd.start)
                continue
            flops = sim.client(sat).n * sim.costs.onboard_forward_flops
            rnd.inputs_ready(sat, sim.compute(rnd.acct, sat, rnd.start, flops))


@register_scheme("collaborative")
class Collaborative(FedScheme):
    """The paper's split: satellites embed their images, the embeddings go down by the max-flow
    scheduler (shared over intra-plane ISLs with ``comm.intra_orbit_sharing``), the ground
    encoder returns features, which go back up to the satellite that trains on them.

    With a trained encoder it is split learning (SplitFed): every local step the satellite
    embeds a batch, the activations go down to the ground (routed over ISLs to a station), the
    ground runs the encoder and head forward and backward, and the activations' gradient comes
    back up for the satellite's backward pass; the next step waits for it. The ground keeps a
    copy of its side per satellite and averages them with the satellites' embeddings, so the
    topology carries only the embedding's weights. Ground compute is not contended (a GPU per
    concurrent session is assumed)."""

    def onboard_param_bytes(self, costs: Costs) -> int:
        return costs.embed_param_bytes + (0 if self.split_learning else costs.head_param_bytes)

    def update_bytes(self, costs: Costs) -> int:
        return costs.embed_update_bytes if self.split_learning else costs.update_bytes

    @classmethod
    def trains_across_cut(cls, cfg: FedConfig) -> bool:
        return cfg.model.trainable != "head"

    def __init__(self, sim: RoundSimulator) -> None:
        super().__init__(sim)
        self._drain: tuple[tuple, dict[str, Track], Accounting] | None = None

    def train(self, rnd: _Round, sat: str, tr: Track, done: Callable[[Track | None], None]
              ) -> None:
        if not self.split_learning:
            super().train(rnd, sat, tr, done)
            return
        sim, c, acct = self.sim, self.sim.costs, rnd.acct
        n, bs = sim.client(sat).n, sim.cfg.train.batch_size
        batches = [min(bs, n - i) for _ in range(sim.cfg.train.local_epochs)
                   for i in range(0, n, bs)]

        def step(k: int, tr: Track) -> None:
            if k == len(batches):
                done(tr)
                return
            b = batches[k]
            fwd = sim.compute(acct, sat, tr, b * c.embed_flops)  # the forward on board

            def down(res: TransferResult) -> None:
                if not res.delivered:
                    rnd.mark_dropped(sat, "no_split_downlink")
                    done(None)
                    return
                acct.ground_j += sim.ground_hw.energy_j(b * c.ground_train_flops)
                ground = sim.book(acct, res, fwd, model=False).add(
                    "ground_compute_s", sim.ground_hw.seconds(b * c.ground_train_flops))
                rnd.q.request(ground.t, GROUND, sat, b * c.grad_bytes, then=partial(up, ground),
                              live=rnd.before_deadline)

            def up(ground: Track, res: TransferResult) -> None:
                if not res.delivered:
                    rnd.mark_dropped(sat, "no_split_uplink")
                    done(None)
                    return
                back = sim.compute(acct, sat, sim.book(acct, res, ground, model=False),
                                   b * (c.embed_train_flops - c.embed_flops))  # the backward
                step(k + 1, back)

            rnd.q.request(fwd.t, sat, GROUND, b * c.cut_bytes, then=down,
                          live=rnd.before_deadline)

        step(0, tr)

    def prepare(self, rnd: _Round, need: list[str]) -> None:
        sim, c, acct = self.sim, self.sim.costs, rnd.acct
        if self.split_learning:  # nothing to precompute: each step crosses the cut
            for sat in need:
                rnd.inputs_ready(sat, rnd.start)
            return
        sharing = sim.cfg.comm.intra_orbit_sharing
        embedded = {s: sim.compute(acct, s, rnd.start, sim.client(s).n * c.embed_flops)
                    for s in need}
        key = (rnd.st.round, rnd.start.t, tuple(need))
        if self._drain is None or self._drain[0] != key:  # the look-ahead's is the same
            drained = Accounting()
            down = drain_to_ground(rnd.net, embedded,
                                   {s: sim.client(s).n * c.cut_bytes for s in need},
                                   sharing=sharing, maxflow=sim.cfg.comm.maxflow, acct=drained)
            self._drain = (key, down, drained)
        _, down, drained = self._drain
        acct.merge(drained)
        for sat in need:
            if sat not in down:  # still aloft at the plan's end, or never in reach of a station
                if rnd.net.drain_reaches(sat, sharing):
                    rnd.beyond_plan(sat, sat, GROUND, "the embeddings")
                rnd.drop(sat, "no_downlink")
                continue
            n = sim.client(sat).n
            acct.ground_j += sim.ground_hw.energy_j(n * c.encode_flops)
            enc = down[sat].add("ground_compute_s", sim.ground_hw.seconds(n * c.encode_flops))

            def uplinked(res: TransferResult, sat: str = sat, enc: Track = enc) -> None:
                if res.delivered:
                    rnd.inputs_ready(sat, sim.book(acct, res, enc, model=False))
                else:
                    rnd.drop(sat, "no_feature_uplink")

            rnd.q.request(enc.t, GROUND, sat, n * c.feature_bytes, direct=not sharing,
                          then=uplinked, live=rnd.before_deadline)


@register_scheme("centralised")
class Centralised(FedScheme):
    """The baseline without federation: satellites downlink their raw images and the ground
    trains on them as they arrive (:mod:`research.fed.centralised`). The model never leaves the
    ground, so ``star`` (everything meets there) is its only topology."""

    topologies = ("star",)
    simulator = "research.fed.centralised:CentralisedSimulator"

    def prepare(self, rnd: _Round, need: list[str]) -> None:
        raise TypeError("the centralised baseline runs on its own simulator, not in rounds")

    def onboard_param_bytes(self, costs: Costs) -> int:
        return 0
