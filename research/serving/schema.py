"""Typed requests and responses of the serving layer, and the checks that guard every service.

A request carries either an image tensor (uint8 ``[B, C, H, W]`` in its modality's shape) or a bitstream from a link codec (``list[bytes]`` plus the token shape),
with the metadata routing needs: the tasks asked for, the capturing satellite, the capture time
and a deadline. :func:`validate` turns anything malformed into an error :class:`Response` with a
message that names the problem, so a bad request never crashes a service.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from research.serving.modalities import get_modality, list_modalities

__all__ = ["Limits", "Request", "Response", "ServingError", "error_response", "validate"]

class ServingError(ValueError):
    """A request the serving layer refuses; its message goes into the error response."""


@dataclass(frozen=True)
class Limits:
    """What a deployment accepts: tasks, payload size and batch size (image shapes are the
    modality's, :mod:`research.serving.modalities`); ``modalities``: those with an embedder in
    the deployment (``None``: every registered one)."""

    tasks: tuple[str, ...]
    modalities: tuple[str, ...] | None = None
    max_payload_bytes: int = 16 * 2**20
    max_batch: int = 256
    token_shape: tuple[int, int] | None = None


@dataclass
class Request:
    """One inference request: a payload plus the metadata that routes and judges it.

    Attributes:
        request_id: Unique id; responses echo it and runtimes answer it exactly once.
        tasks: Task names; several tasks on one capture share the embedder and the encoder.
        source: Capturing satellite (``"sat-P00-S03"``).
        capture_time_s: Seconds from the contact plan's epoch.
        deadline_s: Absolute deadline (same clock); ``inf`` for none.
        payload: uint8 images ``[B, C, H, W]`` (``C`` = 3 or 13), or ``None`` for a bitstream.
        bitstream: One link-codec payload per image (tokens after the embedder), or ``None``.
        token_shape: ``(N, D)`` of the tokens a bitstream decodes to.
        modality: a name of :mod:`research.serving.modalities` (``"rgb"``, ``"pan"``, ...).
        tiles: Image tiles the request stands for in simulation (the payload may hold fewer).
    """

    request_id: str
    tasks: tuple[str, ...]
    source: str
    capture_time_s: float = 0.0
    deadline_s: float = float("inf")
    payload: torch.Tensor | None = None
    bitstream: list[bytes] | None = None
    token_shape: tuple[int, int] | None = None
    modality: str = "rgb"
    tiles: int = 1

    @property
    def task(self) -> str:
        """The first task (most requests ask for one)."""
        return self.tasks[0]

    def payload_bytes(self) -> int:
        """Bytes the request carries (image bytes or bitstream bytes)."""
        if self.payload is not None:
            return int(self.payload.numel() * self.payload.element_size())
        return sum(len(b) for b in self.bitstream or [])


@dataclass
class Response:
    """The answer to one request: per-task outputs or an error, plus simulated timing.

    Attributes:
        outputs: task -> tensor (logits ``[B, C]`` or embeddings ``[B, D]``).
        error: Why the request was refused (``None`` when it succeeded).
        served_by: ``service@node`` of every service that handled it, in order.
    """

    request_id: str
    tasks: tuple[str, ...]
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    error: str | None = None
    served_by: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


def error_response(request: Any, message: str) -> Response:
    """An error response for anything, even an object that is not a :class:`Request`."""
    rid = str(getattr(request, "request_id", "?"))
    tasks = getattr(request, "tasks", ())
    tasks = tuple(tasks) if isinstance(tasks, (tuple, list)) else ()
    return Response(request_id=rid, tasks=tasks, error=message)


def _check_tasks(tasks: Any, known: Sequence[str]) -> None:
    if not isinstance(tasks, (tuple, list)) or not tasks:
        raise ServingError(f"tasks must be a non-empty tuple of names; valid: {list(known)}")
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ServingError(f"unknown task(s) {unknown}; valid: {list(known)}")


def _check_metadata(request: Request) -> None:
    for name in ("request_id", "source", "modality"):
        if not isinstance(getattr(request, name), str):
            raise ServingError(f"{name} must be a string, got {getattr(request, name)!r}")
    for name in ("capture_time_s", "deadline_s"):
        v = getattr(request, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise ServingError(f"{name} must be a number of seconds, got {v!r}")
    if isinstance(request.tiles, bool) or not isinstance(request.tiles, int) or request.tiles < 1:
        raise ServingError(f"tiles must be an integer >= 1, got {request.tiles!r}")


def _check_images(x: Any, modality: str, limits: Limits) -> None:
    if not isinstance(x, torch.Tensor):
        raise ServingError(f"payload must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.uint8:
        raise ServingError(f"payload dtype must be torch.uint8 images, got {x.dtype}")
    if x.dim() != 4:
        raise ServingError(f"payload must be [B, C, H, W], got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    m = get_modality(modality)
    if c != m.bands:
        raise ServingError(f"modality {modality!r} needs {m.bands} bands, got {c}")
    if (h, w) != (m.img_size, m.img_size):
        raise ServingError(f"modality {modality!r} images must be {m.img_size}x{m.img_size}, "
                           f"got {h}x{w}")
    if not 1 <= b <= limits.max_batch:
        raise ServingError(f"batch of {b} images; expected 1..{limits.max_batch}")


def _check_bitstream(bs: Any, shape: Any, limits: Limits) -> None:
    if not isinstance(bs, list) or not bs or not all(isinstance(b, bytes) for b in bs):
        raise ServingError("bitstream must be a non-empty list of bytes, one per image")
    if len(bs) > limits.max_batch:
        raise ServingError(f"bitstream of {len(bs)} payloads; expected 1..{limits.max_batch}")
    if limits.token_shape is not None and not _same_shape(shape, limits.token_shape):
        raise ServingError(f"token_shape {shape!r} does not match the encoder's "
                           f"{tuple(limits.token_shape)}")


def _same_shape(shape: Any, expected: Sequence[int]) -> bool:
    """``shape`` is a tuple or list of integers equal to ``expected`` (anything else, a number,
    a tensor or NaN included, is not: ``tuple(shape)`` would raise on those)."""
    if not isinstance(shape, (tuple, list)) or len(shape) != len(expected):
        return False
    for s, e in zip(shape, expected, strict=True):
        if isinstance(s, bool) or not hasattr(s, "__index__") or operator.index(s) != e:
            return False
    return True


def validate(request: Any, limits: Limits) -> Response | None:
    """Check a request; returns an error :class:`Response`, or ``None`` if it may be served.

    Truncated or corrupted bitstreams are caught later by the codec's header checks and turned
    into an error response by the runtime (the bytes must be parsed to know).
    """
    if not isinstance(request, Request):
        return error_response(request, f"expected a Request, got {type(request).__name__}")
    missing = [f.name for f in fields(Request) if not hasattr(request, f.name)]
    if missing:  # built by hand or half decoded: the checks below would raise AttributeError
        return error_response(request, f"request lacks the field(s) {missing}")
    try:
        _check_metadata(request)
        _check_tasks(request.tasks, limits.tasks)
        if request.modality not in list_modalities():
            raise ServingError(f"unknown modality {request.modality!r}; valid: "
                               f"{list_modalities()}")
        if limits.modalities is not None and request.modality not in limits.modalities:
            raise ServingError(f"modality {request.modality!r} has no embedder in this "
                               f"deployment; served: {list(limits.modalities)}")
        if (request.payload is None) == (request.bitstream is None):
            raise ServingError("a request carries exactly one of payload or bitstream")
        if request.payload is not None:
            _check_images(request.payload, request.modality, limits)
        else:
            _check_bitstream(request.bitstream, request.token_shape, limits)
        size = request.payload_bytes()
        if size > limits.max_payload_bytes:
            raise ServingError(f"payload of {size} bytes exceeds the limit of "
                               f"{limits.max_payload_bytes} bytes")
        if request.deadline_s < request.capture_time_s:
            raise ServingError(f"deadline {request.deadline_s} s is before the capture time "
                               f"{request.capture_time_s} s")
    except ServingError as err:
        return error_response(request, str(err))
    return None
