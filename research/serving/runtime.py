"""In-process runtime: executes the real model parts of each chain, with replicas that can fail.

The default runtime (deterministic, used in tests and by the simulator's accuracy checks). Each
service has one or more replicas, each pinned to a node of the placement. A request runs the
shared prefix of its chain once (embedder, codec, encoder segments) and then every head it asks
for. When a replica fails, the call is retried on the next live replica of the same service;
answers are kept by request id, so a request resubmitted after a failure is answered once. Every
replica records the request ids of the calls it ran to completion (:meth:`InProcessRuntime.executions`),
so a test can prove that each call ran exactly once and a dying replica completed nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from encoders.base import IdentityLink
from research.serving.schema import (
    Limits,
    Request,
    Response,
    ServingError,
    error_response,
    validate,
)
from research.serving.services import LinkCodec
from research.serving.tasks import Catalog

__all__ = ["InProcessRuntime", "Replica", "ReplicaFailure"]


class ReplicaFailure(RuntimeError):
    """A replica died while (or before) handling a call."""


@dataclass
class Replica:
    """One copy of a service on a node; ``fail_after`` kills it after that many calls.

    ``executed`` lists the request ids of the calls it ran to completion, in order (a replica
    that dies during a call never completes it), so tests can prove each call ran once.
    """

    service: str
    node: str
    alive: bool = True
    calls: int = 0
    fail_after: int | None = None
    executed: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.service}@{self.node}"


class InProcessRuntime:
    """Serve requests through the catalog's chains, honouring a placement of replicas.

    Args:
        catalog: the services and chains.
        placement: service name -> nodes holding a replica (default: one replica on ``"local"``).
        limits: request checks (defaults to the catalog's tasks and token shape).
    """

    def __init__(self, catalog: Catalog, placement: Mapping[str, Sequence[str]] | None = None,
                 limits: Limits | None = None) -> None:
        self.catalog = catalog
        placement = placement or {}
        self.replicas: dict[str, list[Replica]] = {
            name: [Replica(name, n) for n in placement.get(name, ["local"])]
            for name in catalog.services
        }
        self.limits = limits or Limits(tasks=catalog.tasks, modalities=tuple(catalog.embedders),
                                            token_shape=catalog.token_shape())
        self.answered: dict[str, Response] = {}
        self.answer_count: dict[str, int] = {}
        self._turn: dict[str, int] = {}
        self._identity = IdentityLink()

    # ------------------------------------------------------------------ failures
    def kill(self, service: str, node: str) -> None:
        """Take a replica down now."""
        self._replica(service, node).alive = False

    def fail_after(self, service: str, node: str, calls: int) -> None:
        """Make a replica die during its ``calls + 1``-th call (mid-workload failure): that call
        is never completed there and goes to the next live replica."""
        self._replica(service, node).fail_after = calls

    def executions(self) -> dict[str, dict[str, list[str]]]:
        """request id -> service -> the replicas that ran that call to completion."""
        out: dict[str, dict[str, list[str]]] = {}
        for reps in self.replicas.values():
            for rep in reps:
                for rid in rep.executed:
                    out.setdefault(rid, {}).setdefault(rep.service, []).append(rep.key)
        return out

    def _replica(self, service: str, node: str) -> Replica:
        for r in self.replicas[service]:
            if r.node == node:
                return r
        raise KeyError(f"no replica of {service!r} on {node!r}")

    def _call(self, service: str, x: torch.Tensor, trace: list[str],
              request_id: str) -> torch.Tensor:
        """Run ``service`` on a live replica (round robin), failing over to the others."""
        reps = self.replicas[service]
        start = self._turn.get(service, 0)
        for i in range(len(reps)):
            rep = reps[(start + i) % len(reps)]
            if not rep.alive:
                continue
            if rep.fail_after is not None and rep.calls >= rep.fail_after:
                rep.alive = False  # dies now; this call is rerouted
                continue
            rep.calls += 1
            self._turn[service] = (start + i + 1) % len(reps)
            with torch.no_grad():
                out = self.catalog.services[service](x)
            rep.executed.append(request_id)
            trace.append(rep.key)
            return out
        raise ReplicaFailure(f"no live replica of {service!r} "
                             f"(tried {[r.key for r in reps]})")

    # ------------------------------------------------------------------ serving
    def _tokens(self, request: Request, trace: list[str]) -> torch.Tensor:
        cat, rid = self.catalog, request.request_id
        if request.payload is not None:
            x = self._call(cat.embedders[request.modality],
                           cat.normalize(request.payload, request.modality), trace, rid)
            if cat.codec:
                x = self._call(cat.codec, x, trace, rid)
            return x
        codec = cat.services[cat.codec] if cat.codec else None
        link = codec.link if isinstance(codec, LinkCodec) else self._identity
        tokens = link.decompress(request.bitstream or [], cat.token_shape())
        if not torch.isfinite(tokens).all():  # a corrupted or hostile stream: no garbage answers
            raise ServingError("bitstream decodes to tokens with NaN or infinite values")
        return tokens

    def _run(self, request: Request) -> Response:
        trace: list[str] = []
        x = self._tokens(request, trace)
        rid = request.request_id
        for name in self.catalog.segments:
            x = self._call(name, x, trace, rid)
        outputs = {t: self._call(self.catalog.heads[t], x, trace, rid) for t in request.tasks}
        bad = [t for t, out in outputs.items() if not torch.isfinite(out).all()]
        if bad:  # finite tokens far outside the encoder's range overflow inside it
            raise ServingError(f"task(s) {bad} produced NaN or infinite outputs (tokens far "
                               "outside the range the encoder was trained on?)")
        return Response(request.request_id, tuple(request.tasks), outputs, served_by=trace)

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises for a bad request or a dead replica."""
        bad = validate(request, self.limits)
        if bad is not None:
            return bad
        rid = request.request_id
        if rid in self.answered:  # a retry of an answered request gets the same answer
            return self.answered[rid]
        try:
            resp = self._run(request)
        except (ValueError, ReplicaFailure) as err:
            resp = error_response(request, f"{type(err).__name__}: {err}")
        if resp.ok:
            self.answered[rid] = resp
            self.answer_count[rid] = self.answer_count.get(rid, 0) + 1
        return resp

    def serve(self, requests: Iterable[Request]) -> list[Response]:
        """Answer requests in order."""
        return [self.handle(r) for r in requests]
