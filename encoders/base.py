"""The link-module contract: what crosses a split point, for training and for real transmission.

Every module that sits at a cut of the split ViT (identity, task-oriented codec, spiking encoder)
honours the same small interface, so experiments swap them by YAML:

* ``forward(tokens) -> {"y_hat": tokens', "likelihoods": {name: tensor}}`` for training
  (``likelihoods`` is empty for modules with no entropy model);
* ``compress(tokens) -> list[bytes]`` (one payload per sample) and
  ``decompress(payloads, shape) -> tokens'`` for real transmission; bits sent are always
  ``8 * len(payload)``;
* ``update(force=True)`` before every evaluation (refreshes entropy-coder tables) and
  ``aux_loss()`` for the entropy-model quantiles (zero for modules without one).

Tokens are ``[B, N, D]`` float tensors (``N`` tokens of width ``D``). Every payload starts with the
versioned header of ``encoders.header`` so that a decoder refuses what it cannot decode.

Each concrete link registers itself with ``encoders.registry.register_link`` (name, wire id) and
says how it is built for a cut with ``LinkModule.cut_kwargs``; the registry functions are
re-exported here.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from encoders.checks import all_finite
from encoders.header import Header, config_tag, pack_payload, unpack_payload
from encoders.registry import build_link, constructor_params, list_links, register_link

__all__ = ["LinkModule", "IdentityLink", "register_link", "list_links", "build_link", "ieee_float32"]


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """Run a link's coding transforms in IEEE float32 on a GPU too.

    cuDNN convolutions use TF32 by default (and matmuls do after
    ``torch.set_float32_matmul_precision("high")``). With them an H200 decoded a CPU payload of
    the toy test codec to tokens up to 1.8e-3 away from the CPU's, against under 1e-5 without
    TF32, and TF32 in the encoder's transform makes more symbols round the other way. This keeps
    what a payload decodes to the same on every device up to float32 rounding. It sets the
    process-wide ``fp32_precision`` flags for the duration (not thread-safe, like them).
    """
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    saved = [flag.fp32_precision for flag in flags]
    for flag in flags:
        flag.fp32_precision = "ieee"
    try:
        yield
    finally:
        for flag, value in zip(flags, saved, strict=True):
            flag.fp32_precision = value


class LinkModule(nn.Module):
    """Base class of everything that sits at a cut (see the module docstring for the contract).

    Subclasses implement ``forward``, ``_encode`` (a batch to one body per sample) and
    ``_decode``; the base class writes and checks the headers, so every link refuses a bad
    payload the same way.
    """

    link_name: ClassVar[str] = ""
    codec_id: ClassVar[int] = -1
    flag_mask: ClassVar[int] = 0
    """Header flag bits this link writes; a payload with any other bit set is refused."""

    @classmethod
    def cut_kwargs(cls, dim: int, num_tokens: int, **options: Any) -> dict[str, Any]:
        """Constructor arguments of this link for tokens ``[num_tokens, dim]`` at a cut.

        How every entry is built for a cut (``encoders.registry.build_for_cut``), so that the
        task and the evaluation never branch on link names. ``options`` are the caller's shared
        codec options (``CodecTask`` passes ``latent_dim``, ``merge_tokens``, ``hidden_dim``,
        ``hyper_dim``, ``hyper_hidden_dim``, ``num_steps`` and ``granularity``); each link takes
        the ones it understands and ignores the others. The default passes ``dim``,
        ``num_tokens`` and every option named like a constructor argument; override it where an
        argument derives from the cut or the options differently.
        """
        params = constructor_params(cls)
        cut = {**options, "dim": dim, "num_tokens": num_tokens}
        return {k: v for k, v in cut.items() if k in params}

    def config(self) -> dict[str, object]:
        """Constructor arguments that change the bitstream; hashed into the header's config tag."""
        return {}

    def wire_tag(self) -> int:
        """The 16-bit tag written in (and required from) every payload header."""
        return config_tag(self.config())

    def forward(self, tokens: torch.Tensor) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, force: bool = False) -> bool:
        """Refresh entropy-model tables before real coding; a no-op for modules without one."""
        return False

    def aux_loss(self) -> torch.Tensor:
        """Loss of the entropy-model quantiles (its own optimizer); zero without an entropy model."""
        return torch.zeros((), device=self._device())

    # ----------------------------------------------------------------- real transmission
    def compress(self, tokens: torch.Tensor) -> list[bytes]:
        """Encode ``[B, N, D]`` tokens to one self-describing payload per sample.

        Raises:
            ValueError: If the tokens are not ``[B, N, D]`` of a shape this link can code, or
                hold NaN or infinite values (refused before any coder sees them).
        """
        name = self.link_name or type(self).__name__
        if not isinstance(tokens, torch.Tensor):
            raise ValueError(f"{name}: tokens must be a torch.Tensor [B, N, D], got "
                             f"{type(tokens).__name__}")
        if tokens.dim() != 3:
            raise ValueError(f"expected tokens of shape [B, N, D], got {tuple(tokens.shape)}")
        if not tokens.is_floating_point() or not all_finite(tokens):
            raise ValueError(f"{name}: tokens must be finite "
                             f"floating-point values (got {tokens.dtype}"
                             f"{'' if not tokens.is_floating_point() else ' with NaN or inf'})")
        _, n, d = tokens.shape
        if not (0 < n <= 0xFFFF and 0 < d <= 0xFFFF):
            raise ValueError(f"{name}: token shape {n}x{d} is outside the 1..65535 a payload "
                             "can carry")
        self._check_shape(n, d)
        x = tokens.detach().float()  # every link codes float32 tokens
        if tokens.dtype != torch.float32 and not all_finite(x):  # float64 beyond float32's range
            raise ValueError(f"{name}: {tokens.dtype} tokens up to "
                             f"{tokens.detach().abs().max().item():.3g} are beyond the float32 "
                             f"range (+-{torch.finfo(torch.float32).max:.4g}) the links code")
        if x.shape[0] == 0:
            return []
        with ieee_float32():
            bodies = self._encode(x)
        tag = self.wire_tag()
        return [pack_payload(self.codec_id, tag, n, d, body, flags) for body, flags in bodies]

    def decompress(self, payloads: Sequence[bytes], shape: Sequence[int]) -> torch.Tensor:
        """Decode payloads back to ``[len(payloads), N, D]`` float32 tokens.

        Args:
            payloads: One payload per sample, as returned by ``compress``.
            shape: ``(N, D)`` or ``(B, N, D)`` of the tokens (``B`` must equal ``len(payloads)``).

        Raises:
            ValueError: If a payload is truncated, corrupted, or was encoded by another codec,
                configuration, format version or token shape.
        """
        if isinstance(payloads, (bytes, bytearray)) or not isinstance(payloads, Sequence):
            raise ValueError("payloads must be a list of bytes, one per sample")
        dims = _int_dims(shape)
        if len(dims) not in (2, 3):
            raise ValueError(f"shape must be (N, D) or (B, N, D), got {dims}")
        if len(dims) == 3 and dims[0] != len(payloads):
            raise ValueError(f"shape says {dims[0]} samples but got {len(payloads)} payloads")
        n, d = dims[-2:]
        if not (0 < n <= 0xFFFF and 0 < d <= 0xFFFF):
            raise ValueError(f"token shape {n}x{d} is outside the 1..65535 a payload can carry")
        self._check_shape(n, d)
        tag = self.wire_tag()
        parsed = [
            unpack_payload(p, self.codec_id, tag, n, d, index=i, flag_mask=self.flag_mask)
            for i, p in enumerate(payloads)
        ]
        if not parsed:
            return torch.zeros(0, n, d, device=self._device())
        with ieee_float32():
            tokens = self._decode(parsed, n, d)
        if not all_finite(tokens):  # a valid-looking payload must not yield garbage
            raise ValueError(f"{self.link_name or type(self).__name__}: payloads decode to NaN "
                             "or infinite tokens")
        return tokens

    # ----------------------------------------------------------------- subclass hooks
    def _check_shape(self, num_tokens: int, dim: int) -> None:
        """Raise ``ValueError`` if this module cannot code tokens of this shape."""

    def _encode(self, tokens: torch.Tensor) -> list[tuple[bytes, int]]:  # pragma: no cover
        """Return ``(body, flags)`` per sample; ``tokens`` is detached ``[B, N, D]``."""
        raise NotImplementedError

    def _decode(
        self, parsed: list[tuple[Header, bytes]], num_tokens: int, dim: int
    ) -> torch.Tensor:  # pragma: no cover - abstract
        """Decode checked ``(header, body)`` pairs to ``[B, N, D]`` float32 tokens."""
        raise NotImplementedError

    def _device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")


def _int_dims(shape: Any) -> tuple[int, ...]:
    """``shape`` as a tuple of Python ints; ``ValueError`` for anything else (``None``, floats,
    strings, bools), which ``int()`` would have truncated, parsed or let through as a TypeError."""
    try:
        items = tuple(shape)
        if isinstance(shape, (str, bytes, bytearray)) or any(isinstance(s, bool) for s in items):
            raise TypeError
        return tuple(operator.index(s) for s in items)
    except TypeError:
        raise ValueError(f"shape must be (N, D) or (B, N, D) integers, got {shape!r}") from None


@register_link("identity", codec_id=0, lossless=True)
class IdentityLink(LinkModule):
    """Pass tokens through unchanged; the body is the raw float32 bytes (the uncompressed cut)."""

    def forward(self, tokens: torch.Tensor) -> dict[str, Any]:
        return {"y_hat": tokens, "likelihoods": {}}

    def _encode(self, tokens: torch.Tensor) -> list[tuple[bytes, int]]:
        data = tokens.to(torch.float32).cpu().numpy().astype("<f4")
        return [(sample.tobytes(), 0) for sample in data]

    def _decode(
        self, parsed: list[tuple[Header, bytes]], num_tokens: int, dim: int
    ) -> torch.Tensor:
        expected = 4 * num_tokens * dim
        samples = []
        for i, (_, body) in enumerate(parsed):
            if len(body) != expected:
                raise ValueError(
                    f"identity payload {i} has a {len(body)}-byte body; expected {expected} "
                    f"(float32 tokens of shape {num_tokens}x{dim})"
                )
            samples.append(np.frombuffer(body, dtype="<f4").astype(np.float32))
        out = torch.from_numpy(np.stack(samples)).view(len(parsed), num_tokens, dim)
        return out.to(self._device())
