"""Ray Serve runtime: every replica of a placement is a deployment pinned to its simulated node.

Ray runs on this machine; each simulated node (satellite or station) is a Ray custom resource
``satedge_<node>`` declared at ``ray.init``, and the replica ``service@node`` is a one-replica
deployment that asks for a sliver of that resource, so it can only run where the placement put it.
A router deployment composes the chain per request (shared prefix once, then every head asked),
fails over to another replica of the same service when one dies (Serve restarts the dead one), and
keeps answers by request id, so a client that retries is answered once. The router is reachable
over HTTP on localhost: ``POST /satedge`` with the body of :func:`encode_request`.

Answers equal the in-process runtime's (same modules, same order of operations); the tests check it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from research.serving.schema import Limits, Request, Response, error_response, validate
from research.serving.tasks import Catalog

__all__ = ["RayServeRuntime", "decode_response", "encode_request", "resource_name"]


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


class _ServiceReplica:
    """Body of one replica deployment: runs its service module."""

    def __init__(self, service: torch.nn.Module, key: str) -> None:
        torch.set_num_threads(1)
        self.service = service.eval()
        self.key = key

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, str]:
        with torch.no_grad():
            return self.service(x), self.key

    def die(self) -> None:
        """Kill this replica's process (tests: a replica failing mid-workload)."""
        import os

        os._exit(1)


class _Router:
    """Ingress: validates, composes the chain over replica handles, fails over, deduplicates."""

    def __init__(self, handles: dict, catalog_meta: dict, limits: Limits) -> None:
        self.handles = handles  # service -> list of (key, handle)
        self.meta = catalog_meta
        self.limits = limits
        self.answered: dict[str, dict] = {}
        self.runs: dict[str, int] = {}  # chain completions per request id (must stay 1)
        self.turn: dict[str, int] = {}

    async def _call(self, service: str, x: torch.Tensor, trace: list[str]) -> torch.Tensor:
        reps = self.handles[service]
        start = self.turn.get(service, 0)
        errors = []
        for i in range(len(reps)):
            key, handle = reps[(start + i) % len(reps)]
            try:
                out, served = await handle.remote(x)
            except Exception as err:  # noqa: BLE001 - a dead replica: try the next one
                errors.append(f"{key}: {type(err).__name__}")
                continue
            self.turn[service] = (start + i + 1) % len(reps)
            trace.append(served)
            return out
        raise RuntimeError(f"no live replica of {service!r} ({errors})")

    async def handle(self, request: Request) -> dict:
        bad = validate(request, self.limits)
        if bad is not None:
            return _response_dict(bad)
        if request.request_id in self.answered:
            return self.answered[request.request_id]
        trace: list[str] = []
        try:
            mean = torch.tensor(self.meta["mean"][request.modality]).view(1, -1, 1, 1)
            std = torch.tensor(self.meta["std"][request.modality]).view(1, -1, 1, 1)
            x = (request.payload.float() / 255.0 - mean) / std
            x = await self._call(self.meta["embedders"][request.modality], x, trace)
            for name in self.meta["prefix"]:
                x = await self._call(name, x, trace)
            outputs = {t: await self._call(self.meta["heads"][t], x, trace)
                       for t in request.tasks}
        except (RuntimeError, ValueError) as err:
            return _response_dict(error_response(request, str(err)))
        ans = _response_dict(Response(request.request_id, request.tasks, outputs,
                                      served_by=trace))
        self.answered[request.request_id] = ans
        self.runs[request.request_id] = self.runs.get(request.request_id, 0) + 1
        return ans

    async def __call__(self, http_request) -> dict:
        try:
            request = _decode_request(await http_request.body())
        except Exception as err:  # noqa: BLE001 - malformed HTTP body: an error answer
            return _response_dict(error_response(None, f"malformed request body: {err}"))
        return await self.handle(request)

    def answer_count(self) -> dict[str, int]:
        return dict(self.runs)


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
    """

    def __init__(self, catalog: Catalog, placement: Mapping[str, Sequence[str]] | None = None,
                 route_prefix: str = "/satedge", port: int = 8000) -> None:
        self.catalog = catalog
        self.placement = {s: list((placement or {}).get(s, ["local"])) for s in catalog.services}
        self.route_prefix = route_prefix
        self.port = port
        self.replica_handles: dict[str, object] = {}
        self.router = None

    def start(self) -> RayServeRuntime:
        import ray
        from ray import serve

        nodes = sorted({n for ns in self.placement.values() for n in ns})
        if not ray.is_initialized():
            ray.init(num_cpus=2, resources={resource_name(n): 1.0 for n in nodes},
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
        serve.start(http_options={"host": "127.0.0.1", "port": self.port})
        used = {s for t in self.catalog.tasks for s in self.catalog.chain(t, "rgb")}
        used |= set(self.catalog.embedders.values())
        replica = serve.deployment(_ServiceReplica)
        handles: dict[str, list] = {}
        apps = []
        for service in sorted(used):
            for node in self.placement[service]:
                key = f"{service}@{node}"
                app = replica.options(
                    name=key.replace("@", "__"), num_replicas=1,
                    ray_actor_options={"num_cpus": 0, "resources": {resource_name(node): 0.01}},
                ).bind(self.catalog.services[service], key)
                apps.append(app)
                handles.setdefault(service, []).append((key, app))
        cat = self.catalog
        meta = {"embedders": cat.embedders, "heads": cat.heads, "mean": cat.mean, "std": cat.std,
                "prefix": [*([cat.codec] if cat.codec else []), *cat.segments]}
        limits = Limits(tasks=cat.tasks, token_shape=cat.token_shape())
        router = serve.deployment(_Router).options(
            name="router", num_replicas=1, ray_actor_options={"num_cpus": 0})
        self.router = serve.run(router.bind(handles, meta, limits), name="satedge",
                                route_prefix=self.route_prefix)
        for reps in handles.values():
            for key, _ in reps:
                self.replica_handles[key] = serve.get_deployment_handle(
                    key.replace("@", "__"), app_name="satedge")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.route_prefix}"

    def handle(self, request: Request) -> Response:
        """Serve one request through the router's Python handle."""
        return decode_response(json.dumps(self.router.handle.remote(request).result()))

    def post(self, request: Request, timeout_s: float = 60.0) -> Response:
        """Serve one request over HTTP on localhost."""
        import urllib.request

        req = urllib.request.Request(self.url, data=encode_request(request), method="POST")
        with urllib.request.urlopen(req, timeout=timeout_s) as fh:
            return decode_response(fh.read())

    def kill(self, service: str, node: str) -> None:
        """Kill the process of one replica (Serve restarts it; the router fails over meanwhile)."""
        try:
            self.replica_handles[f"{service}@{node}"].die.remote().result(timeout_s=10)
        except Exception:  # noqa: BLE001, S110 - the call dies with the process, as intended
            pass

    def answer_counts(self) -> dict[str, int]:
        """How many times the router completed each request's chain (1 = exactly once)."""
        return dict(self.router.answer_count.remote().result())

    def shutdown(self) -> None:
        import ray
        from ray import serve

        serve.shutdown()
        ray.shutdown()
