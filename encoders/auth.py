"""Authenticated payloads: who sent a bitstream or model update, and that it is new and intact.

A payload's CRC32 (:mod:`encoders.header`) catches noise, not an attacker: anyone on the link
can change a body and recompute it. :class:`Sealer` wraps any payload (a link bitstream, a
serialised model update) in an **envelope** carrying the sender, a sequence number and an
Ed25519 signature or an HMAC-SHA256 tag over all of it; :class:`Verifier` opens envelopes and
checks, in this order, before anything decodes the payload: the envelope's format, the sender
(known, and its key's scheme), the signature or tag, then the sequence number against replays (a
sliding window per sender, as IPsec's anti-replay). Every failed check raises
:class:`AuthError` naming the check. The primitives come from the ``cryptography`` package;
nothing here is hand-written crypto.

Envelope (big-endian)::

    magic    2s  b"SA"
    version  B   AUTH_VERSION
    scheme   B   1 = Ed25519 (64-byte signature), 2 = HMAC-SHA256 (32-byte tag)
    sender   B + n bytes  length-prefixed UTF-8 sender name (1..255 bytes)
    seq      Q   sequence number, strictly increasing per sender and run
    length   I   payload length
    payload  length bytes
    tag      64 or 32 bytes over everything before it, then the context (below)

A **batch envelope** (magic ``b"SB"``, :meth:`Sealer.seal_many`) carries many payloads under one
sequence number and one tag: its payload is ``count I`` then ``length I + bytes`` per item, so a
pass's worth of inferences pays the tag once (Ed25519: 92 bytes per single envelope from
``sat-P00-S00``, about 4 per item in a batch of 512). A batch is accepted or refused whole.

A **context** (``Sealer(..., context=...)``, the same on the :class:`Verifier`) is signed but not
sent: both ends know it, e.g. the run, the recipient, the payload type and the tensor shape, so
an envelope replayed into another run, to another recipient or as another type fails the
signature check at no byte cost. The empty context signs exactly the envelope (as before).

Keys are made per run in memory (:func:`generate_keys`) and never written by this module; a
researcher who needs them across processes should keep them outside the repository.
:class:`AuthenticatedLink` puts the envelope around a link module's payloads, so a link's
``decompress`` never sees a payload that failed a check.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from encoders.base import LinkModule

__all__ = [
    "AUTH_SCHEMES",
    "AuthError",
    "AuthenticatedLink",
    "KeyPair",
    "Sealer",
    "Verifier",
    "generate_keys",
    "overhead_bytes",
]

MAGIC = b"SA"
BATCH_MAGIC = b"SB"
_COUNT = struct.Struct(">I")
AUTH_VERSION = 1
AUTH_SCHEMES = {"ed25519": 1, "hmac-sha256": 2}
_TAG_BYTES = {1: 64, 2: 32}
_FIXED = struct.Struct(">2sBBB")  # magic, version, scheme, sender length
_SEQ_LEN = struct.Struct(">QI")
REPLAY_WINDOW = 64


class AuthError(ValueError):
    """An envelope that failed a check; the message names the check."""


@dataclass(frozen=True)
class KeyPair:
    """One sender's key: ``signing`` seals, ``verifying`` opens (the same secret for HMAC)."""

    scheme: str
    signing: Ed25519PrivateKey | bytes
    verifying: Ed25519PublicKey | bytes


def generate_keys(senders: Sequence[str], scheme: str = "ed25519") -> dict[str, KeyPair]:
    """A fresh key per sender for this run (Ed25519 key pairs, or 32-byte HMAC secrets)."""
    if scheme not in AUTH_SCHEMES:
        raise ValueError(f"auth scheme {scheme!r} is not one of {sorted(AUTH_SCHEMES)}")
    keys = {}
    for name in senders:
        _sender_bytes(name)
        if scheme == "ed25519":
            sk = Ed25519PrivateKey.generate()
            keys[name] = KeyPair(scheme, sk, sk.public_key())
        else:
            secret = secrets.token_bytes(32)
            keys[name] = KeyPair(scheme, secret, secret)
    return keys


def _sender_bytes(name: str) -> bytes:
    raw = name.encode()
    if not 1 <= len(raw) <= 255:
        raise ValueError(f"sender name {name!r} must be 1 to 255 bytes of UTF-8")
    return raw


def overhead_bytes(sender: str, scheme: str = "ed25519", batch: int | None = None) -> int:
    """Bytes an envelope adds to a payload from ``sender`` (what a network must also carry);
    with ``batch``, what a batch envelope adds to ``batch`` payloads in all."""
    single = (_FIXED.size + len(_sender_bytes(sender)) + _SEQ_LEN.size
              + _TAG_BYTES[AUTH_SCHEMES[scheme]])
    return single if batch is None else single + _COUNT.size * (1 + batch)


class Sealer:
    """Seals payloads from one sender with its key and an increasing sequence number
    (``context``: signed, not sent; see the module docstring)."""

    def __init__(self, sender: str, key: KeyPair, start_seq: int = 0,
                 context: bytes = b"") -> None:
        self.sender = sender
        self._sender = _sender_bytes(sender)
        self.key = key
        self.scheme = AUTH_SCHEMES[key.scheme]
        self.seq = start_seq
        self.context = _as_bytes(context, "context")

    def seal(self, payload: bytes) -> bytes:
        """The envelope of ``payload`` (next sequence number)."""
        return self._seal(MAGIC, _as_bytes(payload, "payload"))

    def seal_many(self, payloads: Sequence[bytes]) -> bytes:
        """One batch envelope of ``payloads`` (one sequence number, one tag)."""
        if isinstance(payloads, (bytes, bytearray, memoryview, str)):
            raise TypeError("seal_many takes a sequence of payloads, not one payload")
        items = [_as_bytes(p, f"payload {i}") for i, p in enumerate(payloads)]
        return self._seal(BATCH_MAGIC, _COUNT.pack(len(items)) + b"".join(
            _COUNT.pack(len(p)) + p for p in items))

    def _seal(self, magic: bytes, payload: bytes) -> bytes:
        seq = self.seq + 1  # used only once the envelope is made
        body = (_FIXED.pack(magic, AUTH_VERSION, self.scheme, len(self._sender)) + self._sender
                + _SEQ_LEN.pack(seq, len(payload)) + payload)
        self.seq = seq
        return body + _tag(self.key, body + self.context)


def _as_bytes(value: object, what: str) -> bytes:
    """``value`` as bytes, refusing what ``bytes()`` would silently turn into zeros (an int)."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be bytes, got {type(value).__name__}")
    return bytes(value)


def _tag(key: KeyPair, data: bytes) -> bytes:
    if key.scheme == "ed25519":
        return key.signing.sign(data)
    h = hmac.HMAC(key.signing, hashes.SHA256())
    h.update(data)
    return h.finalize()


class Verifier:
    """Opens envelopes from known senders, rejecting forged, damaged and replayed ones.

    Args:
        keys: ``{sender: KeyPair}`` (only the verifying half is used).
        window: Anti-replay window: a sequence number is accepted once, and only if it is above
            the highest accepted minus ``window`` (late, reordered envelopes within it pass).
    """

    def __init__(self, keys: Mapping[str, KeyPair], window: int = REPLAY_WINDOW,
                 context: bytes = b"") -> None:
        if window < 1:
            raise ValueError(f"replay window must be >= 1, got {window}")
        self.keys = dict(keys)
        self.context = _as_bytes(context, "context")
        self.window = window
        self._highest: dict[str, int] = {}
        self._seen: dict[str, set[int]] = {}

    def open(self, envelope: bytes) -> tuple[str, int, bytes]:
        """``(sender, sequence number, payload)`` of a valid, new envelope (then recorded).

        Raises:
            AuthError: Naming the failed check: ``format``, ``sender``, ``signature`` or
                ``replay``.
        """
        return self.open_batch([envelope])[0]

    def open_batch(self, envelopes: Sequence[bytes]) -> list[tuple[str, int, bytes]]:
        """:meth:`open` for a batch, all or nothing: every envelope is checked (a sequence number
        twice in the batch is a replay) before any is recorded, so a batch refused for one bad
        envelope can be resent whole."""
        opened = [self._check(e, MAGIC) for e in envelopes]
        self._accept(opened)
        return opened

    def open_many(self, envelope: bytes) -> tuple[str, int, list[bytes]]:
        """``(sender, sequence number, payloads)`` of a valid, new batch envelope (all or
        nothing: the payloads are split only after the signature and replay checks)."""
        sender, seq, body = self._check(envelope, BATCH_MAGIC)
        items = _split(body, sender)
        self._accept([(sender, seq, body)])
        return sender, seq, items

    def _accept(self, opened: list[tuple[str, int, bytes]]) -> None:
        """Record the sequence numbers of envelopes that all passed (a number twice is a
        replay)."""
        seen: set[tuple[str, int]] = set()
        for sender, seq, _ in opened:
            if (sender, seq) in seen:
                raise AuthError(f"replay check failed: sequence {seq} from {sender!r} appears "
                                "twice in the batch")
            seen.add((sender, seq))
        for sender, seq, _ in opened:
            self._record(sender, seq)

    def _check(self, envelope: bytes, want: bytes) -> tuple[str, int, bytes]:
        """Every check of :meth:`open`, without recording the sequence number."""
        if not isinstance(envelope, (bytes, bytearray, memoryview)):
            raise AuthError(f"format check failed: expected bytes, got {type(envelope).__name__}")
        try:
            data = bytes(envelope)
        except ValueError as err:  # a released memoryview
            raise AuthError(f"format check failed: unreadable envelope ({err})") from None
        if len(data) < _FIXED.size:
            raise AuthError(f"format check failed: {len(data)} bytes is shorter than the "
                            f"{_FIXED.size}-byte envelope header")
        magic, version, scheme, n_sender = _FIXED.unpack_from(data)
        if magic != want:
            kind = "a batch envelope (open_many)" if magic == BATCH_MAGIC else (
                "a single envelope (open)" if magic == MAGIC else f"magic {magic!r}")
            raise AuthError(f"format check failed: {kind}, expected magic {want!r}")
        if version != AUTH_VERSION:
            raise AuthError(f"format check failed: envelope version {version}, expected "
                            f"{AUTH_VERSION}")
        if scheme not in _TAG_BYTES:
            raise AuthError(f"format check failed: unknown auth scheme id {scheme}")
        start = _FIXED.size + n_sender
        end = start + _SEQ_LEN.size
        if n_sender == 0 or len(data) < end:
            raise AuthError("format check failed: truncated before the sequence number")
        seq, length = _SEQ_LEN.unpack_from(data, start)
        tag_at = end + length
        if len(data) != tag_at + _TAG_BYTES[scheme]:
            raise AuthError(f"format check failed: {len(data)} bytes, expected {tag_at} plus a "
                            f"{_TAG_BYTES[scheme]}-byte tag")
        try:
            sender = data[_FIXED.size:start].decode()
        except UnicodeDecodeError:
            raise AuthError("format check failed: sender name is not UTF-8") from None
        key = self.keys.get(sender)
        if key is None:
            raise AuthError(f"sender check failed: unknown sender {sender!r}")
        if AUTH_SCHEMES[key.scheme] != scheme:
            raise AuthError(f"sender check failed: {sender!r} uses {key.scheme}, the envelope "
                            f"another scheme")
        if not _verifies(key, data[:tag_at] + self.context, data[tag_at:]):
            raise AuthError(f"signature check failed: the envelope from {sender!r} was altered, "
                            "sealed with another key or bound to another context")
        self._check_replay(sender, seq)
        return sender, seq, data[end:tag_at]

    def _check_replay(self, sender: str, seq: int) -> None:
        highest = self._highest.get(sender, 0)
        if seq <= highest - self.window:
            raise AuthError(f"replay check failed: sequence {seq} from {sender!r} is older than "
                            f"the window ({highest} - {self.window})")
        if seq in self._seen.get(sender, ()):
            raise AuthError(f"replay check failed: sequence {seq} from {sender!r} was already "
                            "accepted")

    def _record(self, sender: str, seq: int) -> None:
        highest = self._highest.get(sender, 0)
        seen = self._seen.setdefault(sender, set())
        seen.add(seq)
        if seq > highest:
            self._highest[sender] = seq
            floor = seq - self.window
            self._seen[sender] = {s for s in seen if s > floor}


def _split(body: bytes, sender: str) -> list[bytes]:
    """The items of an authenticated batch body (a sender's own malformed batch: ``format``)."""
    def bad(why: str) -> AuthError:
        return AuthError(f"format check failed: batch from {sender!r} {why}")

    if len(body) < _COUNT.size:
        raise bad("has no item count")
    (count,) = _COUNT.unpack_from(body)
    items, at = [], _COUNT.size
    for i in range(count):
        if at + _COUNT.size > len(body):
            raise bad(f"ends before item {i} of {count}")
        (n,) = _COUNT.unpack_from(body, at)
        at += _COUNT.size
        if at + n > len(body):
            raise bad(f"item {i} of {count} is cut short")
        items.append(body[at:at + n])
        at += n
    if at != len(body):
        raise bad(f"has {len(body) - at} bytes after its {count} items")
    return items


def _verifies(key: KeyPair, data: bytes, tag: bytes) -> bool:
    try:
        if key.scheme == "ed25519":
            key.verifying.verify(tag, data)
        else:
            h = hmac.HMAC(key.verifying, hashes.SHA256())
            h.update(data)
            h.verify(tag)
    except InvalidSignature:
        return False
    return True


class AuthenticatedLink(LinkModule):
    """A link module whose payloads travel sealed: ``compress`` seals each payload of ``link``,
    ``decompress`` opens (and checks) every envelope before ``link`` decodes any of them."""

    def __init__(self, link: LinkModule, sealer: Sealer, verifier: Verifier) -> None:
        super().__init__()
        self.link = link
        self.sealer = sealer
        self.verifier = verifier

    def forward(self, tokens: torch.Tensor) -> dict:
        return self.link(tokens)

    def update(self, force: bool = False) -> bool:
        return self.link.update(force)

    def compress(self, tokens: torch.Tensor) -> list[bytes]:
        return [self.sealer.seal(p) for p in self.link.compress(tokens)]

    def decompress(self, payloads: Sequence[bytes], shape: Sequence[int]) -> torch.Tensor:
        opened = [payload for _, _, payload in self.verifier.open_batch(list(payloads))]
        return self.link.decompress(opened, shape)
