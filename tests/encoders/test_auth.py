"""Authenticated payloads: sealed envelopes open only when intact, from a known sender, and new."""

from __future__ import annotations

import random
import re

import pytest
import torch

from encoders.auth import (
    AuthenticatedLink,
    AuthError,
    Sealer,
    Verifier,
    generate_keys,
    overhead_bytes,
)
from encoders.registry import build_for_cut

CHECK = re.compile(r"^(format|sender|signature|replay) check failed")


@pytest.mark.parametrize("scheme", ["ed25519", "hmac-sha256"])
def test_a_sealed_payload_opens_to_itself_with_its_sender_and_sequence(scheme):
    keys = generate_keys(["sat-1", "sat-2"], scheme)
    sealer, verifier = Sealer("sat-1", keys["sat-1"]), Verifier(keys)
    envelope = sealer.seal(b"tokens")
    assert len(envelope) == len(b"tokens") + overhead_bytes("sat-1", scheme)
    assert verifier.open(envelope) == ("sat-1", 1, b"tokens")
    assert verifier.open(sealer.seal(b"")) == ("sat-1", 2, b"")
    with pytest.raises(AuthError, match="replay check failed: sequence 1 from 'sat-1' was already"):
        verifier.open(envelope)


def test_reordering_within_the_window_passes_and_older_envelopes_do_not():
    keys = generate_keys(["s"])
    sealer, verifier = Sealer("s", keys["s"]), Verifier(keys, window=4)
    envelopes = [sealer.seal(bytes([i])) for i in range(10)]
    for i in (2, 0, 1, 5, 3):  # late but within 4 of the highest accepted
        assert verifier.open(envelopes[i])[1] == i + 1
    assert verifier.open(envelopes[9])[1] == 10
    with pytest.raises(AuthError, match="replay check failed: sequence 5 .* older than the window"):
        verifier.open(envelopes[4])


def test_keys_and_names_are_checked():
    with pytest.raises(ValueError, match="auth scheme 'rsa' is not one of"):
        generate_keys(["s"], "rsa")
    with pytest.raises(ValueError, match="sender name '' must be 1 to 255 bytes"):
        generate_keys([""])
    keys = generate_keys(["a"])
    with pytest.raises(AuthError, match="sender check failed: unknown sender 'a'"):
        Verifier(generate_keys(["b"])).open(Sealer("a", keys["a"]).seal(b"x"))
    hmac_keys = generate_keys(["a"], "hmac-sha256")
    with pytest.raises(AuthError, match="sender check failed: 'a' uses ed25519"):
        Verifier(keys).open(Sealer("a", hmac_keys["a"]).seal(b"x"))


def test_fuzz_every_tampered_forged_or_replayed_envelope_is_refused_before_decoding():
    rng = random.Random(0)
    keys = generate_keys(["sat-1", "sat-2"])
    inner = build_for_cut("int8", 8, 4)
    decoded = []
    original = inner.decompress

    def spy(payloads, shape):
        decoded.append(len(payloads))
        return original(payloads, shape)

    inner.decompress = spy
    link = AuthenticatedLink(inner, Sealer("sat-1", keys["sat-1"]), Verifier(keys))
    intruder = Sealer("sat-1", generate_keys(["sat-1"])["sat-1"], start_seq=10_000)
    accepted: list[bytes] = []
    refused = 0
    for case in range(1260):
        tokens = torch.randn(1, 4, 8)
        (good,) = link.compress(tokens)
        attack = case % 6
        if attack == 0:  # one bit flipped anywhere
            bad = bytearray(good)
            bit = rng.randrange(8 * len(bad))
            bad[bit // 8] ^= 1 << (bit % 8)
            bad = bytes(bad)
        elif attack == 1:  # truncated or extended
            cut = rng.randrange(len(good))
            bad = good[:cut] if rng.random() < 0.5 else good + bytes(rng.randrange(1, 9))
        elif attack == 2:  # a replay of an envelope already accepted
            if not accepted:
                accepted.append(good)
                torch.testing.assert_close(link.decompress([good], (4, 8)),
                                           inner.decompress(inner.compress(tokens), (4, 8)))
                continue
            bad = rng.choice(accepted)
        elif attack == 3:  # sealed by someone with another key, same sender name
            bad = intruder.seal(inner.compress(tokens)[0])
        elif attack == 4:  # payload swapped for another valid bitstream, tag kept
            other = inner.compress(torch.randn(1, 4, 8))[0]
            head = len(good) - 64 - len(other)
            bad = good[:head] + other + good[-64:]
        else:  # a valid envelope: must pass
            before = len(decoded)
            link.decompress([good], (4, 8))
            assert len(decoded) == before + 1
            accepted.append(good)
            continue
        before = len(decoded)
        with pytest.raises(AuthError) as err:
            link.decompress([bad], (4, 8))
        assert CHECK.match(str(err.value)), str(err.value)
        assert len(decoded) == before  # refused before the link decoded anything
        refused += 1
    assert refused >= 1000


def test_a_batch_is_all_or_nothing():
    keys = generate_keys(["s"])
    sealer, verifier = Sealer("s", keys["s"]), Verifier(keys)
    good = [sealer.seal(b"a"), sealer.seal(b"b")]
    bad = bytearray(good[1])
    bad[-1] ^= 1
    with pytest.raises(AuthError, match="signature check failed"):
        verifier.open_batch([good[0], bytes(bad)])
    assert [seq for _, seq, _ in verifier.open_batch(good)] == [1, 2]  # the clean resend passes
    with pytest.raises(AuthError, match="appears twice in the batch"):
        Verifier(keys).open_batch([good[0], good[0]])


@pytest.mark.parametrize("scheme", ["ed25519", "hmac-sha256"])
def test_a_batch_envelope_pays_the_tag_once_and_opens_whole(scheme):
    keys = generate_keys(["sat-P00-S00"], scheme)
    sealer, verifier = Sealer("sat-P00-S00", keys["sat-P00-S00"]), Verifier(keys)
    payloads = [bytes([i]) * (30 + i) for i in range(64)]
    envelope = sealer.seal_many(payloads)
    assert len(envelope) == sum(map(len, payloads)) + overhead_bytes("sat-P00-S00", scheme, 64)
    assert overhead_bytes("sat-P00-S00", scheme, 64) / 64 < overhead_bytes("sat-P00-S00",
                                                                           scheme) / 10
    assert verifier.open_many(envelope) == ("sat-P00-S00", 1, payloads)
    assert verifier.open_many(sealer.seal_many([])) == ("sat-P00-S00", 2, [])
    with pytest.raises(AuthError, match="replay check failed"):
        verifier.open_many(envelope)
    with pytest.raises(AuthError, match=r"format check failed: a batch envelope \(open_many\)"):
        verifier.open(sealer.seal_many(payloads[:2]))
    with pytest.raises(AuthError, match=r"format check failed: a single envelope \(open\)"):
        verifier.open_many(sealer.seal(b"x"))


def test_every_bit_flip_of_a_batch_is_refused_before_any_item_is_split():
    keys = generate_keys(["s"])
    sealer = Sealer("s", keys["s"])
    envelope = sealer.seal_many([b"abc", b"", b"defgh"])
    refused = 0
    for i in range(len(envelope) * 8):
        bad = bytearray(envelope)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(AuthError) as err:
            Verifier(keys).open_many(bytes(bad))
        assert CHECK.match(str(err.value))
        refused += 1
    assert refused == len(envelope) * 8


def test_a_sender_own_malformed_batch_is_a_format_error_after_the_signature():
    keys = generate_keys(["s"])
    sealer = Sealer("s", keys["s"])
    envelope = sealer._seal(b"SB", (3).to_bytes(4, "big") + (1).to_bytes(4, "big") + b"a")
    with pytest.raises(AuthError, match="format check failed: batch from 's' ends before item 1"):
        Verifier(keys).open_many(envelope)


def test_the_context_is_signed_not_sent_and_binds_the_envelope():
    keys = generate_keys(["sat-1"])
    context = b"run=7;to=ground;link=int8;shape=1x64x192"
    sealer = Sealer("sat-1", keys["sat-1"], context=context)
    envelope = sealer.seal(b"tokens")
    assert len(envelope) == len(b"tokens") + overhead_bytes("sat-1")  # no bytes on the wire
    assert Verifier(keys, context=context).open(envelope)[2] == b"tokens"
    for other in (b"", b"run=8;to=ground;link=int8;shape=1x64x192",
                  b"run=7;to=ground;link=int8;shape=1x65x192"):
        with pytest.raises(AuthError, match="bound to another context"):
            Verifier(keys, context=other).open(envelope)
    batch = sealer.seal_many([b"a", b"b"])
    with pytest.raises(AuthError, match="signature check failed"):
        Verifier(keys).open_many(batch)
    # without a context, an envelope signs exactly its bytes (as before contexts existed)
    plain = Sealer("sat-1", keys["sat-1"]).seal(b"x")
    assert keys["sat-1"].verifying.verify(plain[-64:], plain[:-64]) is None


def test_what_bytes_would_turn_into_zeros_is_refused_and_spends_no_sequence_number():
    keys = generate_keys(["s"])
    sealer = Sealer("s", keys["s"])
    with pytest.raises(TypeError, match="seal_many takes a sequence of payloads"):
        sealer.seal_many(b"ab")
    with pytest.raises(TypeError, match="payload 1 must be bytes, got int"):
        sealer.seal_many([b"a", 7])
    with pytest.raises(TypeError, match="context must be bytes, got str"):
        Sealer("s", keys["s"], context="run=7")
    assert sealer.seq == 0 and Verifier(keys).open(sealer.seal(b"x"))[1] == 1
