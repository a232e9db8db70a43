"""Image formats: sizes are the encoded bytes, decoded tiles keep their shape, bad input is named."""

import pytest
import torch

from encoders.images import image_roundtrip


@pytest.mark.parametrize("bands", [1, 3])
def test_roundtrip_keeps_shape_and_counts_bytes(bands):
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(1, bands, 8, 8, generator=g), size=64,
                                             mode="bilinear")[0]
    tile = (smooth * 255).round().to(torch.uint8)
    raw, n_raw = image_roundtrip(tile, "raw")
    assert raw is tile and n_raw == bands * 64 * 64
    for fmt in ("png", "jpeg", "webp"):
        out, n = image_roundtrip(tile, fmt, 90)
        assert out.shape == tile.shape and out.dtype == torch.uint8
        assert 0 < n < n_raw  # a smooth tile compresses
        assert (out.float() - tile.float()).abs().mean() < 4  # and decodes close to itself
    assert image_roundtrip(tile, "png")[0].equal(tile)  # lossless
    assert image_roundtrip(tile, "jpeg", 20)[1] < image_roundtrip(tile, "jpeg", 95)[1]


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="image format 'gif'"):
        image_roundtrip(torch.zeros(3, 8, 8, dtype=torch.uint8), "gif")
    with pytest.raises(ValueError, match="C = 1 or 3"):
        image_roundtrip(torch.zeros(13, 8, 8, dtype=torch.uint8), "jpeg")
