"""Ray Serve runtime: every replica of a placement is a deployment pinned to its simulated node.

Ray runs on this machine; each simulated node (satellite or station) is a Ray custom resource
``satedge_<node>`` declared at ``ray.init``, and the replica ``service@node`` is a one-replica
deployment that asks for a sliver of that resource, so it can only run where the placement put it.
A router deployment composes the chain per request (shared prefix once, then every head asked).
When a replica dies during a call, the router sends that call (not the whole chain) to another
live replica of the same service and marks the dead one down until it answers a ping again (Serve
restarts it); while every replica of a service is down, calls wait for one to come back. A call
unanswered for ``attempt_timeout_s`` is sent to the next live replica too (Serve may hold a call
to a killed one-replica deployment until its restart without raising). The router keeps answers
by request id and joins a retry to a request still in flight, so a client that retries is
answered once and its chain is not run again. The router is reachable over HTTP on localhost:
``POST /satedge`` with the body of :func:`encode_request`.

Exactly once, and checked: with ``ledger=True`` (the default) every replica reports to an
:class:`ExecutionLedger` actor when a call reaches it and commits the result when it completes
it. A call is executed to completion when it is committed; the ledger lets one live process run
a call at a time, hands a committed result back instead of running the call again (a replica that
dies after committing, before its answer left the process, loses nothing), and tells a late copy
of a delivered call to run nothing. So a test can count, per request id and service, the
executions that ran to completion: exactly one each. The ledger is also the fault hook:
:meth:`RayServeRuntime.kill_during_request` arms one replica so that its next call pauses after
computing and before committing, and kills that replica's process (SIGKILL) while the request is
inside it. Without the ledger a request is still answered once, but a call may run twice (one
that completed in a replica killed before answering, or a slow copy and its resend).

Answers equal the in-process runtime's (same modules, same order of operations); the tests check it.
"""

from __future__ import annotations

import asyncio
import collections
import io
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from research.serving.schema import Limits, Request, Response, error_response, validate
from research.serving.tasks import Catalog

__all__ = ["ExecutionLedger", "RayServeRuntime", "decode_response", "encode_request",
           "resource_name"]


def resource_name(node: str) -> str:
    """The Ray custom resource that stands for a simulated node."""
    return f"satedge_{node}"


def encode_request(request: Request) -> bytes:
    """HTTP body: a JSON header line, then the images as ``.npy`` bytes."""
    head = {"request_id": request.request_id, "tasks": list(request.tasks),
            "source": request.source, "capture_time_s": request.capture_time_s,
            "deadline_s": request.deadline_s, "modality": request.modality}
    buf = io.BytesIO()
    np.save(buf, request.payload.numpy() if request.payload is not None else np.zeros(0))
    return json.dumps(head).encode() + b"\n" + buf.getvalue()


def _decode_request(body: bytes) -> Request:
    head, _, rest = body.partition(b"\n")
    meta = json.loads(head)
    arr = np.load(io.BytesIO(rest), allow_pickle=False)
    return Request(meta["request_id"], tuple(meta["tasks"]), meta["source"],
                   meta["capture_time_s"], meta["deadline_s"], torch.from_numpy(arr),
                   modality=meta["modality"])


def decode_response(body: bytes) -> Response:
    """Inverse of the router's JSON answer."""
    d = json.loads(body)
    outputs = {t: torch.tensor(v) for t, v in d["outputs"].items()}
    return Response(d["request_id"], tuple(d["tasks"]), outputs, d["error"], d["served_by"])


def _service_of(key: str) -> str:
    return key.rsplit("@", 1)[0]


class ExecutionLedger:
    """The commit log of service calls, per request id and service; and the fault hook.

    Runs as a Ray actor (:class:`RayServeRuntime` starts it); a plain object in unit tests.
    A replica calls :meth:`begin` before it computes and :meth:`commit` with the result right
    before it returns it. A call is executed to completion when it is committed, and it runs in
    at most one replica at a time and is committed at most once:

    * :meth:`begin` claims the call for the replica's process. If a live process holds the
      claim (the router sent the call again because the first copy was slow or stuck), it waits
      for that commit or that process's death; if the claimant died, the call runs again here.
    * If the call is committed, :meth:`begin` hands the result back instead (a replica killed
      after committing, before its answer left the process, loses nothing); once the router has
      the result (:meth:`release`) a late copy of the call is told it is done and runs nothing.

    ``alive(pid)`` tells whether a claimant still runs (default: the process exists on this
    machine: the runtime is localhost only). ``begun`` / ``completed`` / ``recovered`` map
    request id -> service -> replica keys.
    """

    def __init__(self, alive: Callable[[int], bool] | None = None) -> None:
        self.alive = alive or _pid_alive
        self.begun: dict[str, dict[str, list[str]]] = {}
        self.completed: dict[str, dict[str, list[str]]] = {}
        self.recovered: dict[str, dict[str, list[str]]] = {}
        self.results: dict[tuple[str, str], object] = {}
        self.claims: dict[tuple[str, str], tuple[str, int]] = {}
        self.released: set[tuple[str, str]] = set()
        self.armed: dict[str, float] = {}
        self.held: dict[str, tuple[str, int]] = {}
        self.log: list[tuple[float, str, str, str, int]] = []  # (t, key, request id, what, pid)

    @staticmethod
    def _add(table: dict, key: str, request_id: str) -> None:
        table.setdefault(request_id, {}).setdefault(_service_of(key), []).append(key)

    def arm(self, key: str, hold_s: float) -> None:
        """Replica ``key``'s next call pauses ``hold_s`` after computing, before committing."""
        self.armed[key] = float(hold_s)
        self.held.pop(key, None)

    def disarm(self, key: str) -> None:
        self.armed.pop(key, None)

    async def begin(self, key: str, request_id: str, pid: int) -> tuple[str, float, object]:
        """A call reaches replica ``key`` (process ``pid``). Returns ``(what, hold_s, result)``:
        ``"run"`` (compute; pause ``hold_s`` first if armed), ``"recovered"`` (``result`` is the
        committed one: return it) or ``"done"`` (the router already has it: return nothing)."""
        call = (request_id, _service_of(key))
        while True:
            if call in self.released:
                self.log.append((time.time(), key, request_id, "late", int(pid)))
                return "done", 0.0, None
            if call in self.results:
                self._add(self.recovered, key, request_id)
                self.log.append((time.time(), key, request_id, "recovered", int(pid)))
                return "recovered", 0.0, self.results[call]
            claim = self.claims.get(call)
            if claim is None or not self.alive(claim[1]):
                break
            await asyncio.sleep(0.02)  # running in another live process: wait for its commit
        self.claims[call] = (key, int(pid))
        self._add(self.begun, key, request_id)
        self.log.append((time.time(), key, request_id, "begin", int(pid)))
        hold = self.armed.pop(key, 0.0)
        if hold > 0:
            self.held[key] = (request_id, int(pid))
        return "run", hold, None

    def commit(self, key: str, request_id: str, result: object = None) -> None:
        """Replica ``key`` completed the call; its result is kept until :meth:`release`."""
        call = (request_id, _service_of(key))
        self._add(self.completed, key, request_id)
        self.log.append((time.time(), key, request_id, "complete", 0))
        if call not in self.released:
            self.results.setdefault(call, result)
        self.claims.pop(call, None)

    def release(self, request_id: str, service: str) -> None:
        """The router has the result of this call: forget it (a late copy runs nothing)."""
        self.results.pop((request_id, service), None)
        self.released.add((request_id, service))

    def held_call(self, key: str) -> tuple[str, int] | None:
        """``(request_id, pid)`` of the armed call now paused inside replica ``key``, if any."""
        return self.held.pop(key, None)

    def snapshot(self) -> dict:
        """``begun`` / ``completed`` / ``recovered`` (request id -> service -> replica keys),
        ``pending`` (results not yet released) and the ``log`` ``(t, key, request_id, what,
        pid)``."""
        return {"begun": self.begun, "completed": self.completed, "recovered": self.recovered,
                "pending": len(self.results), "log": self.log}


class _ServiceReplica:
    """Body of one replica deployment: runs its service module, committing to the ledger."""

    def __init__(self, service: torch.nn.Module, key: str, ledger=None) -> None:
        torch.set_num_threads(1)
        self.service = service.eval()
        self.key = key
        self.ledger = ledger
        self.pid = os.getpid()

    async def __call__(self, x: torch.Tensor, request_id: str | None = None
                       ) -> tuple[torch.Tensor | None, str]:
        if self.ledger is None or request_id is None:
            with torch.no_grad():
                return self.service(x), self.key
        what, hold, result = await self.ledger.begin.remote(self.key, request_id, self.pid)
        if what != "run":  # completed elsewhere: its result, or nothing if already delivered
            return result, self.key
        with torch.no_grad():
            out = self.service(x)
        if hold > 0:  # fault hook (tests): computed, not committed; the killer kills us now
            await asyncio.sleep(hold)
        await self.ledger.commit.remote(self.key, request_id, out)
        return out, self.key

    def ping(self) -> int:
        return os.getpid()

    def die(self) -> None:
        """Kill this replica's process (a replica failing between requests)."""
        os._exit(1)


def _ignore(fut: asyncio.Future) -> None:
    if not fut.cancelled():
        fut.exception()  # retrieved: no "exception was never retrieved" warning


def _replica_died(err: BaseException) -> bool:
    """A dead or unreachable replica (fail over), not an error raised by the service itself."""
    from ray.exceptions import RayTaskError

    return not isinstance(err, RayTaskError)


class _Router:
    """Ingress: validates, composes the chain over replica handles, fails over, deduplicates."""

    def __init__(self, handles: dict, catalog_meta: dict, limits: Limits,
                 failover_timeout_s: float = 300.0, ledger=None,
                 attempt_timeout_s: float = 10.0, ping_timeout_s: float = 2.0) -> None:
        self.handles = handles  # service -> list of (key, handle)
        self.ledger = ledger
        self.meta = catalog_meta
        self.limits = limits
        self.failover_timeout_s = failover_timeout_s
        self.ping_timeout_s = ping_timeout_s
        self.attempt_timeout_s = attempt_timeout_s
        self.hedges = 0
        self.answered: dict[str, dict] = {}
        self.inflight: dict[str, asyncio.Future] = {}
        self.runs: dict[str, int] = {}  # chain completions per request id (must stay 1)
        self.turn: dict[str, int] = {}
        self.down: set[str] = set()
        self.failovers = 0
        self._probes: dict[str, asyncio.Task] = {}
        self.events: collections.deque = collections.deque(maxlen=50_000)  # (t, rid, key, what)

    def _mark_down(self, key: str, handle) -> None:
        if key not in self.down:
            self.down.add(key)
            self.events.append((time.time(), "", key, "down"))
            self._probes[key] = asyncio.get_running_loop().create_task(self._probe(key, handle))

    async def _probe(self, key: str, handle) -> None:
        """Ping a dead replica until Serve has restarted it, then route to it again. A ping has
        no effect, so it may time out and be sent again (a call sent in the moment a replica
        dies can hang on the dead one); a request is never sent to a replica that is down."""
        while True:
            try:
                await asyncio.wait_for(handle.ping.remote(), self.ping_timeout_s)
            except Exception:  # noqa: BLE001 - still dead (or the ping hung): try again
                await asyncio.sleep(0.2)
                continue
            self.down.discard(key)
            self.events.append((time.time(), "", key, "up"))
            return

    async def _call(self, service: str, x: torch.Tensor, request_id: str,
                    trace: list[str]) -> torch.Tensor:
        """One service call. It goes to the next live replica; if that replica dies during the
        call, to the next live one, and while every replica is down it waits for one to come
        back. A call still unanswered after ``attempt_timeout_s`` (Serve may hold a call to a
        killed one-replica deployment until the restart, without an error) is also sent to the
        next live replica, and the first answer wins; the ledger lets only one copy run. Gives
        up after ``failover_timeout_s``."""
        reps = self.handles[service]
        deadline = time.monotonic() + self.failover_timeout_s
        errors: list[str] = []
        pending: dict[asyncio.Future, int] = {}
        last_send = -math.inf
        try:
            while True:
                now = time.monotonic()
                if now >= deadline:
                    raise RuntimeError(f"no live replica of {service!r} answered within "
                                       f"{self.failover_timeout_s:g} s ({errors[-4:]})")
                if not pending or now - last_send >= self.attempt_timeout_s:
                    for i in pending.values():  # slow or stuck: route around it until it pings
                        self._mark_down(*reps[i])
                    start = self.turn.get(service, 0)
                    for i in ((start + j) % len(reps) for j in range(len(reps))):
                        key, handle = reps[i]
                        if key in self.down or i in pending.values():
                            continue
                        if pending:
                            self.hedges += 1
                        self.events.append((time.time(), request_id, key, "send"))
                        pending[asyncio.ensure_future(handle.remote(x, request_id))] = i
                        self.turn[service] = (i + 1) % len(reps)
                        last_send = now
                        break
                if not pending:  # every replica is down: wait for a probe to bring one back
                    await asyncio.sleep(0.05)
                    continue
                wait = min(last_send + self.attempt_timeout_s, deadline) - time.monotonic()
                done, _ = await asyncio.wait(pending, timeout=max(wait, 0.05),
                                             return_when=asyncio.FIRST_COMPLETED)
                for fut in done:
                    key, handle = reps[pending.pop(fut)]
                    err = fut.exception()
                    if err is None:
                        out, served = fut.result()
                        trace.append(served)
                        if self.ledger is not None:  # the result is here: the ledger may forget it
                            self.ledger.release.remote(request_id, service)
                        return out
                    self.events.append((time.time(), request_id, key, type(err).__name__))
                    if not _replica_died(err):
                        raise ValueError(f"{key}: {err}") from err
                    self.failovers += 1
                    self._mark_down(key, handle)
        finally:
            for fut in pending:  # copies still out: their answers (or errors) are not needed
                fut.add_done_callback(_ignore)

    async def _run(self, request: Request) -> dict:
        rid = request.request_id
        trace: list[str] = []
        try:
            mean = torch.tensor(self.meta["mean"][request.modality]).view(1, -1, 1, 1)
            std = torch.tensor(self.meta["std"][request.modality]).view(1, -1, 1, 1)
            x = (request.payload.float() / 255.0 - mean) / std
            x = await self._call(self.meta["embedders"][request.modality], x, rid, trace)
            for name in self.meta["prefix"]:
                x = await self._call(name, x, rid, trace)
            outputs = {t: await self._call(self.meta["heads"][t], x, rid, trace)
                       for t in request.tasks}
        except (RuntimeError, ValueError) as err:
            return _response_dict(error_response(request, str(err)))
        ans = _response_dict(Response(rid, request.tasks, outputs, served_by=trace))
        self.answered[rid] = ans
        self.runs[rid] = self.runs.get(rid, 0) + 1
        return ans

    async def handle(self, request: Request) -> dict:
        bad = validate(request, self.limits)
        if bad is not None:
            return _response_dict(bad)
        rid = request.request_id
        if request.payload is None:
            return _response_dict(error_response(request, "the Ray runtime serves image payloads; "
                                                 "send bitstreams to the in-process runtime"))
        if rid in self.answered:  # a retry of an answered request: the same answer
            return self.answered[rid]
        task = self.inflight.get(rid)
        if task is None:  # a retry while the first attempt runs joins it
            task = self.inflight[rid] = asyncio.ensure_future(self._run(request))
            task.add_done_callback(lambda _t: self.inflight.pop(rid, None))
        return await asyncio.shield(task)  # a client that hangs up does not cancel the run

    async def __call__(self, http_request) -> dict:
        try:
            request = _decode_request(await http_request.body())
        except Exception as err:  # noqa: BLE001 - malformed HTTP body: an error answer
            return _response_dict(error_response(None, f"malformed request body: {err}"))
        return await self.handle(request)

    def answer_count(self) -> dict[str, int]:
        return dict(self.runs)

    def stats(self) -> dict:
        return {"runs": dict(self.runs), "failovers": self.failovers, "hedges": self.hedges,
                "down": sorted(self.down)}

    def event_log(self) -> list[tuple[float, str, str, str]]:
        return list(self.events)


def _response_dict(r: Response) -> dict:
    return {"request_id": r.request_id, "tasks": list(r.tasks), "error": r.error,
            "served_by": r.served_by,
            "outputs": {t: v.tolist() for t, v in r.outputs.items()}}


class RayServeRuntime:
    """Start Ray, deploy every replica pinned to its node, and serve through the router.

    Args:
        catalog: the services and chains (``catalog.codec`` runs in-line in the prefix).
        placement: service -> nodes with a replica (services missing: one replica on ``"local"``).
        route_prefix: HTTP route of the router on ``http://127.0.0.1:<port>``.
        port: HTTP port.
        tasks / modalities: deploy only the services these need (default: all).
        ledger: start an :class:`ExecutionLedger` that replicas report to (and the fault hook).
        num_cpus: CPUs Ray may use on this machine; replicas and the router ask for none, so
            this bounds the workers Ray schedules, not the replicas.
        failover_timeout_s: how long the router keeps trying a service's replicas for one call
            (a restart on a busy machine can take minutes).
        attempt_timeout_s: after this long without an answer, the router also sends the call to
            the next live replica (the ledger lets only one copy run).
    """

    def __init__(self, catalog: Catalog, placement: Mapping[str, Sequence[str]] | None = None,
                 route_prefix: str = "/satedge", port: int = 8000, *,
                 tasks: Sequence[str] | None = None, modalities: Sequence[str] | None = None,
                 ledger: bool = True, num_cpus: int = 2,
                 failover_timeout_s: float = 300.0, attempt_timeout_s: float = 10.0) -> None:
        self.catalog = catalog
        self.placement = {s: list((placement or {}).get(s, ["local"])) for s in catalog.services}
        self.route_prefix = route_prefix
        self.port = port
        self.tasks = tuple(tasks or catalog.tasks)
        self.modalities = tuple(modalities or catalog.embedders)
        self.use_ledger = ledger
        self.num_cpus = num_cpus
        self.failover_timeout_s = failover_timeout_s
        self.attempt_timeout_s = attempt_timeout_s
        self.replica_handles: dict[str, object] = {}
        self.router = None
        self.ledger = None

    @property
    def services(self) -> list[str]:
        """The services deployed: every chain of the tasks and modalities served."""
        return sorted({s for t in self.tasks for m in self.modalities
                       for s in self.catalog.chain(t, m)})

    @property
    def replica_keys(self) -> list[str]:
        """``service@node`` of every replica deployed."""
        return [f"{s}@{n}" for s in self.services for n in self.placement[s]]

    def start(self) -> RayServeRuntime:
        import ray
        from ray import serve

        nodes = sorted({n for s in self.services for n in self.placement[s]})
        if not ray.is_initialized():
            ray.init(num_cpus=self.num_cpus, resources={resource_name(n): 1.0 for n in nodes},
                     include_dashboard=False, log_to_driver=False, configure_logging=False,
                     object_store_memory=256 * 2**20)
        missing = [n for n in nodes if resource_name(n) not in ray.cluster_resources()]
        if missing:  # a replica asking for them would wait forever
            raise RuntimeError(f"Ray is already running without the node resources {missing}; "
                               "shut it down first (one RayServeRuntime per Ray session)")
        serve.start(http_options={"host": "127.0.0.1", "port": self.port})
        if self.use_ledger:
            self.ledger = ray.remote(num_cpus=0)(ExecutionLedger).remote()
        replica = serve.deployment(_ServiceReplica)
        handles: dict[str, list] = {}
        for service in self.services:
            for node in self.placement[service]:
                key = f"{service}@{node}"
                app = replica.options(
                    name=key.replace("@", "__"), num_replicas=1, health_check_period_s=1.0,
                    health_check_timeout_s=60.0,
                    ray_actor_options={"num_cpus": 0, "resources": {resource_name(node): 0.01}},
                ).bind(self.catalog.services[service], key, self.ledger)
                handles.setdefault(service, []).append((key, app))
        cat = self.catalog
        meta = {"embedders": cat.embedders, "heads": cat.heads, "mean": cat.mean, "std": cat.std,
                "prefix": [*([cat.codec] if cat.codec else []), *cat.segments]}
        limits = Limits(tasks=self.tasks, modalities=tuple(cat.embedders),
                        token_shape=cat.token_shape())
        router = serve.deployment(_Router).options(
            name="router", num_replicas=1, max_ongoing_requests=1000,
            ray_actor_options={"num_cpus": 0})
        self.router = serve.run(router.bind(handles, meta, limits, self.failover_timeout_s,
                                            self.ledger, self.attempt_timeout_s),
                                name="satedge", route_prefix=self.route_prefix)
        for key in self.replica_keys:
            self.replica_handles[key] = serve.get_deployment_handle(
                key.replace("@", "__"), app_name="satedge")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.route_prefix}"

    def handle(self, request: Request) -> Response:
        """Serve one request through the router's Python handle."""
        return decode_response(json.dumps(self.router.handle.remote(request).result()))

    def post(self, request: Request, timeout_s: float = 600.0) -> Response:
        """Serve one request over HTTP on localhost."""
        import urllib.request

        req = urllib.request.Request(self.url, data=encode_request(request), method="POST")
        with urllib.request.urlopen(req, timeout=timeout_s) as fh:
            return decode_response(fh.read())

    def kill(self, service: str, node: str) -> None:
        """Kill the process of one replica between requests (Serve restarts it)."""
        try:
            self.replica_handles[f"{service}@{node}"].die.remote().result(timeout_s=10)
        except Exception:  # noqa: BLE001, S110 - the call dies with the process, as intended
            pass

    def kill_during_request(self, key: str, timeout_s: float = 120.0, hold_s: float = 60.0,
                            cancel: threading.Event | None = None) -> dict | None:
        """Kill replica ``key``'s process (SIGKILL) while it is inside a request.

        Arms the replica's next call to pause after computing and before returning; when a call
        pauses there, kills the process and waits until it is gone. Returns ``{"replica",
        "request_id", "pid", "t"}`` of the call it was inside, or ``None`` if no call reached the
        replica within ``timeout_s`` or ``cancel`` was set (nothing killed). Needs
        ``ledger=True``; localhost only.
        """
        import ray

        if self.ledger is None:
            raise RuntimeError("kill_during_request needs the execution ledger (ledger=True)")
        ray.get(self.ledger.arm.remote(key, hold_s))
        end = time.monotonic() + timeout_s
        held = None
        while held is None and time.monotonic() < end and not (cancel and cancel.is_set()):
            held = ray.get(self.ledger.held_call.remote(key))
            if held is None:
                time.sleep(0.02)
        if held is None:
            ray.get(self.ledger.disarm.remote(key))
            return None
        rid, pid = held
        t = time.time()
        os.kill(pid, signal.SIGKILL)  # no handler runs: the call dies with the process
        while _pid_alive(pid) and time.monotonic() < end + hold_s:
            time.sleep(0.02)
        return {"replica": key, "request_id": rid, "pid": pid, "t": t}

    def executions(self) -> dict:
        """The ledger's ``{"begun"|"completed": {request_id: {service: [replica keys]}}}``."""
        import ray

        if self.ledger is None:
            return {"begun": {}, "completed": {}}
        return ray.get(self.ledger.snapshot.remote())

    def answer_counts(self) -> dict[str, int]:
        """How many times the router completed each request's chain (1 = exactly once)."""
        return dict(self.router.answer_count.remote().result())

    def router_stats(self) -> dict:
        """``{"runs": {request_id: chain completions}, "failovers": calls failed over after a
        replica died, "hedges": calls sent again after ``attempt_timeout_s``, "down": [keys]}``."""
        return dict(self.router.stats.remote().result())

    def router_events(self) -> list[tuple[float, str, str, str]]:
        """The router's last 50,000 ``(t, request_id, replica, "send"|error|"down"|"up")``."""
        return list(self.router.event_log.remote().result())

    def shutdown(self) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a killed child of the raylet stays a zombie until reaped: check its state
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
