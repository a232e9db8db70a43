"""Image formats a satellite downlinks: the bytes a tile costs and the tile the ground decodes.

One function for every scheme that sends pictures (eval's ``image`` scheme, serving's ground
baselines), so a JPEG is priced and decoded the same way everywhere. Pillow does the coding.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

__all__ = ["IMAGE_FORMATS", "encode_image", "image_roundtrip"]

IMAGE_FORMATS = ("raw", "png", "jpeg", "webp")


def encode_image(image: torch.Tensor, fmt: str = "jpeg", quality: int = 75) -> bytes:
    """The bytes of a uint8 tile ``[C, H, W]`` (C = 1 or 3) in ``fmt`` (png, jpeg or webp): the
    satellite's side of :func:`image_roundtrip`, also what ``scripts/bench_codec.py`` times."""
    grey = image.shape[0] == 1
    arr = image[0].numpy() if grey else image.permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    kwargs = {} if fmt == "png" else {"quality": int(quality)}
    Image.fromarray(arr, mode="L" if grey else "RGB").save(buf, format=fmt.upper(), **kwargs)
    return buf.getvalue()


def image_roundtrip(image: torch.Tensor, fmt: str = "jpeg", quality: int = 75
                    ) -> tuple[torch.Tensor, int]:
    """Encode a uint8 tile ``[C, H, W]`` (C = 1 or 3) as ``fmt`` and decode it back.

    Returns the decoded tile (same shape and dtype) and the encoded size in bytes; ``raw`` is
    the tile itself at one byte per sample. ``quality`` applies to jpeg and webp.
    """
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"image format {fmt!r}; expected one of {list(IMAGE_FORMATS)}")
    if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must be a uint8 [C, H, W] tensor with C = 1 or 3, got "
                         f"{image.dtype} {tuple(image.shape)}")
    if fmt == "raw":
        return image, image.numel()
    grey = image.shape[0] == 1
    data = encode_image(image, fmt, quality)
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("L" if grey else "RGB"))
    out = torch.from_numpy(decoded.copy())
    return (out[None] if grey else out.permute(2, 0, 1)), len(data)
