"""Secure aggregation: the aggregator learns the weighted sum of the updates and nothing else.

SecAgg (Bonawitz et al., CCS 2017), in the form Flower's SecAgg+ uses, for one round of ``n``
satellites of which any may drop out after sending its keys:

1. **Keys.** Each satellite makes two X25519 key pairs (one for masks, one to encrypt shares)
   and a self-mask seed, and advertises its public keys through a coordinator (the ground
   segment, for the star and the ring alike: :mod:`research.fed.secure_rounds` books it).
2. **Shares.** Each satellite splits its private key and its seed into ``n`` Shamir shares
   (threshold ``t``; Flower's ``create_shares``), encrypts each for its holder with AES-GCM under
   a key both derive from their share key pairs by X25519 + HKDF (owner and holder bound as
   associated data), and sends them through the aggregator; it keeps its own share.
3. **Masked input.** Each satellite encodes ``w_i * x_i`` (and ``w_i``) in fixed point modulo
   ``2**bits`` and adds its self mask and, for every other satellite ``j``, ``+-PRG(s_ij)``:
   pairwise masks that cancel in the sum. The PRG is ChaCha20 keyed by HKDF of the X25519 shared
   secret (``cryptography``): no hand-written crypto.
4. **Unmasking.** Survivors send, for each survivor, a share of its seed, and for each satellite
   that dropped, a share of its private key; with ``t`` shares the aggregator removes the self
   masks and the dropped satellites' pairwise masks, and is left with the sum.

In a ring the same masked vectors are summed hop by hop, so the next satellite only ever sees
masked partial sums; the unmasking step runs at the node that ends with the sum.
:func:`secure_weighted_mean` returns the weighted mean, equal to plain FedAvg to the fixed-point
resolution (``2**-frac_bits``), and :class:`SecAggCost` the bytes each stage adds (what a
network must carry) and the extra round trips.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flwr.common.secure_aggregation.crypto.shamir import combine_shares, create_shares

from research.models.averaging import State, flatten, unflatten

__all__ = ["SecAggCost", "SecAggError", "secure_sum", "secure_weighted_mean"]


class SecAggError(ValueError):
    """A round that cannot be unmasked (too few survivors, bad parameters)."""


def _derive(shared: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def _prg(key: bytes, n: int) -> np.ndarray:
    """``n`` uniform uint64 from ChaCha20 keyed by ``key`` (a fresh key per round and pair)."""
    stream = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    return np.frombuffer(stream.update(bytes(8 * n)), dtype=np.uint64).copy()


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _private_raw(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


@dataclass
class SecAggCost:
    """Bytes per satellite each stage adds (up to the aggregator / down from it), and round
    trips beyond plain FedAvg's one upload."""

    keys_up: int = 0
    keys_down: int = 0
    shares_up: int = 0
    shares_down: int = 0
    masked_up: int = 0
    unmask_up: int = 0
    plain_up: int = 0
    extra_round_trips: int = 3

    @classmethod
    def for_round(cls, n: int, dim: int, bits: int = 64, threshold: int | None = None
                  ) -> SecAggCost:
        """What :func:`secure_sum` sends for ``n`` satellites and ``dim`` values: 2 X25519 public
        keys each; one AES-GCM box (12-byte nonce, 16-byte tag) per holder with a 2-byte length
        and Shamir shares of a 32-byte private key and a 32-byte seed; ``bits``-bit masked values;
        one share per other satellite to unmask."""
        t = threshold if threshold is not None else n // 2 + 1
        share = len(create_shares(bytes(32), t, n)[0])
        box = 12 + 2 + 2 * share + 16
        return cls(keys_up=64, keys_down=64 * (n - 1), shares_up=box * (n - 1),
                   shares_down=box * (n - 1), masked_up=(dim * bits) // 8,
                   unmask_up=share * (n - 1), plain_up=dim * 4)

    @property
    def overhead_bytes(self) -> int:
        """Everything a satellite sends or receives beyond its plain float32 update."""
        return (self.keys_up + self.keys_down + self.shares_up + self.shares_down
                + self.masked_up - self.plain_up + self.unmask_up)


def secure_sum(vectors: list[np.ndarray], dropped: set[int] = frozenset(), threshold: int | None
               = None, bits: int = 64, frac_bits: int = 32) -> tuple[np.ndarray, SecAggCost]:
    """The sum of the survivors' ``vectors`` (float64), computed only from masked inputs.

    ``dropped`` satellites advertise keys and send shares, then never send their masked input.

    Raises:
        SecAggError: If fewer than ``threshold`` satellites survive (the round must be
            repeated), or the fixed-point format is invalid.
    """
    n = len(vectors)
    t = threshold if threshold is not None else n // 2 + 1
    if bits not in (32, 64) or not 0 < frac_bits < bits - 1:
        raise SecAggError(f"fixed point needs bits in (32, 64) and 0 < frac_bits < bits - 1, "
                          f"got {bits}, {frac_bits}")
    if not 2 <= t <= n:
        raise SecAggError(f"threshold {t} must be between 2 and the {n} satellites")
    survivors = [i for i in range(n) if i not in dropped]
    if len(survivors) < t:
        raise SecAggError(f"{len(survivors)} of {n} satellites survived, fewer than the "
                          f"threshold {t}: the round cannot be unmasked and must be repeated")
    dim = len(vectors[0])
    mod_mask = np.uint64((1 << bits) - 1) if bits < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
    if not all(np.isfinite(v).all() for v in vectors):
        raise SecAggError("updates must be finite to be encoded in fixed point")
    limit = 2.0 ** (bits - 1 - frac_bits)
    peak = n * max(float(np.abs(v).max(initial=0.0)) for v in vectors)
    if peak >= limit:
        raise SecAggError(f"a sum of up to {peak:g} does not fit {bits}-bit fixed point with "
                          f"{frac_bits} fraction bits (limit {limit:g}): scale the updates or "
                          "use fewer fraction bits")
    # 1. keys: one pair for the masks, one for encrypting shares (Bonawitz et al. keep them apart:
    # the mask key of a dropped satellite is rebuilt, and must not open anyone's share boxes)
    keys = [X25519PrivateKey.generate() for _ in range(n)]
    publics = [_raw(k.public_key()) for k in keys]
    box_keys = [X25519PrivateKey.generate() for _ in range(n)]
    box_publics = [_raw(k.public_key()) for k in box_keys]
    seeds = [os.urandom(32) for _ in range(n)]

    def pair_key(i: int, j: int, info: bytes) -> bytes:
        shared = keys[i].exchange(X25519PublicKey.from_public_bytes(publics[j]))
        return _derive(shared, info)

    def box_key(i: int, j: int) -> bytes:
        shared = box_keys[i].exchange(X25519PublicKey.from_public_bytes(box_publics[j]))
        return _derive(shared, b"secagg share")

    # 2. shares, each encrypted for its holder (the owner keeps its own)
    boxes: dict[tuple[int, int], bytes] = {}  # (owner, holder) -> ciphertext
    own: dict[int, bytes] = {}

    def label(owner: int, holder: int) -> bytes:  # binds a box to its owner and holder
        return owner.to_bytes(4, "big") + holder.to_bytes(4, "big")

    for i in range(n):
        sk_shares = create_shares(_private_raw(keys[i]), t, n)
        seed_shares = create_shares(seeds[i], t, n)
        for j in range(n):
            plain = len(sk_shares[j]).to_bytes(2, "big") + sk_shares[j] + seed_shares[j]
            if j == i:
                own[i] = plain
                continue
            nonce = os.urandom(12)
            boxes[i, j] = nonce + AESGCM(box_key(i, j)).encrypt(nonce, plain, label(i, j))

    # 3. masked inputs (survivors only reach the aggregator)
    def encode(v: np.ndarray) -> np.ndarray:
        fixed = np.round(np.asarray(v, dtype=np.float64) * 2.0 ** frac_bits).astype(np.int64)
        return fixed.view(np.uint64) & mod_mask

    def pair_mask(i: int, j: int) -> np.ndarray:
        return _prg(pair_key(i, j, b"secagg mask"), dim) & mod_mask

    total = np.zeros(dim, dtype=np.uint64)
    for i in survivors:
        y = encode(vectors[i]) + (_prg(_derive(seeds[i], b"secagg self"), dim) & mod_mask)
        for j in range(n):
            if j != i:
                y = y + pair_mask(i, j) if i < j else y - pair_mask(i, j)
        total = (total + (y & mod_mask)) & mod_mask

    # 4. unmasking from t survivors' shares
    def recover(owner: int, seed_part: bool) -> bytes:
        parts = []
        for h in survivors[:t]:
            if h == owner:
                plain = own[owner]
            else:
                box = boxes[owner, h]
                plain = AESGCM(box_key(h, owner)).decrypt(box[:12], box[12:], label(owner, h))
            k = int.from_bytes(plain[:2], "big")
            parts.append(plain[2 + k:] if seed_part else plain[2:2 + k])
        return combine_shares(parts)

    for i in survivors:
        total = (total - (_prg(_derive(recover(i, True), b"secagg self"), dim) & mod_mask)) \
            & mod_mask
    for d in dropped:
        sk = X25519PrivateKey.from_private_bytes(recover(d, False))
        for j in survivors:
            shared = sk.exchange(X25519PublicKey.from_public_bytes(publics[j]))
            mask = _prg(_derive(shared, b"secagg mask"), dim) & mod_mask
            # survivor j added +mask if j < d, -mask otherwise
            total = (total - mask if j < d else total + mask) & mod_mask
    signed = total.view(np.int64) if bits == 64 else np.where(
        total >= np.uint64(1 << (bits - 1)), total.astype(np.int64) - (1 << bits),
        total.astype(np.int64))
    cost = SecAggCost.for_round(n, dim, bits, t)
    sent = sum(len(b) for b in boxes.values())
    if sent != cost.shares_up * n:  # the bytes a network books are the bytes sealed here
        raise AssertionError(f"sealed {sent} share bytes, SecAggCost books {cost.shares_up * n}")
    return signed.astype(np.float64) / 2.0 ** frac_bits, cost


def secure_weighted_mean(states: list[State], weights: list[float],
                         dropped: set[int] = frozenset(), **kwargs) -> tuple[State, SecAggCost]:
    """Weighted FedAvg of the survivors' ``states`` through :func:`secure_sum` (weights are
    normalised by their announced total before encoding, so the fixed point never overflows)."""
    if len(states) != len(weights) or not states:
        raise SecAggError(f"need one weight per state, got {len(states)} and {len(weights)}")
    scale = float(sum(weights))
    vectors = [np.concatenate([flatten(s).double().numpy() * (w / scale), [w / scale]])
               for s, w in zip(states, weights, strict=True)]
    summed, cost = secure_sum(vectors, dropped, **kwargs)
    mean = torch.from_numpy(summed[:-1] / summed[-1])
    return unflatten(mean, states[0]), cost
