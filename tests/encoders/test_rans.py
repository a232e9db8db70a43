"""The batched rANS encoder: the same bytes as one stream per sample, and the same refusals."""

from __future__ import annotations

import pytest
import torch

from encoders.rans import CoderTables, StreamDecoder, encode_batch, encode_stream


@pytest.fixture
def tables(make_link) -> CoderTables:
    link = make_link("factorized")
    link.update(force=True)
    return CoderTables.of(link.entropy_bottleneck)


def test_a_batch_codes_each_sample_as_its_own_stream(tables):
    channels = len(tables.cdfs)
    indexes = torch.arange(channels, dtype=torch.int32)[:, None].expand(channels, 5)
    symbols = torch.randint(-3, 4, (6, channels, 5), generator=torch.Generator().manual_seed(0))
    batch = encode_batch(symbols, indexes, tables)
    assert batch == [encode_stream([(s, indexes, tables)]) for s in symbols]
    assert len(set(batch)) > 1  # different samples, different streams
    decoded = StreamDecoder(batch[2], indexes.numel(), "sample 2").decode(indexes, tables)
    assert torch.equal(decoded, symbols[2].int())


def test_a_batch_refuses_what_a_single_stream_refuses(tables):
    indexes = torch.zeros(4, dtype=torch.int32)
    with pytest.raises(ValueError, match="NaN or inf"):
        encode_batch(torch.tensor([[0.0, 1.0, float("nan"), 0.0]]), indexes, tables)
    with pytest.raises(ValueError, match="outside"):
        encode_batch(torch.tensor([[0, 2**21, 0, 0]]), indexes, tables)
    with pytest.raises(ValueError, match="table index"):
        encode_batch(torch.zeros(1, 4), torch.full((4,), len(tables.cdfs)), tables)
    with pytest.raises(ValueError, match="3 table indexes"):
        encode_batch(torch.zeros(2, 4), indexes[:3], tables)
    with pytest.raises(ValueError, match="3 table indexes"):
        encode_stream([(torch.zeros(4), indexes[:3], tables)])
    assert encode_batch(torch.zeros(0, 4), indexes, tables) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_all_finite_finds_one_bad_value_anywhere(bad):
    from encoders.checks import all_finite

    x = torch.zeros(3, 7, 5)
    assert all_finite(x)
    for index in ((0, 0, 0), (1, 3, 2), (2, 6, 4)):
        y = x.clone()
        y[index] = bad
        assert not all_finite(y)
    assert all_finite(torch.zeros(0, 4)) and all_finite(torch.tensor([2**31 - 1]))
