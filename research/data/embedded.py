"""The embedded EuroSAT subset that ships inside the package, so the main job runs offline.

It holds 100 real EuroSAT RGB images per class (1,000 in all), stored as their original JPEG
bytes. They were drawn (seeded, stratified) from the *test* split of the full data set, so a
checkpoint trained on the full training split has never seen them. See ``embedded/README.md``
for the citation and the MIT licence of EuroSAT, and ``scripts/make_embedded_subset.py`` for the
command that wrote it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from research.data.imagefolder import EUROSAT_CLASSES, ImageSet

EMBEDDED_PATH = Path(__file__).with_name("embedded") / "eurosat_subset.npz"


def write_embedded(path: Path, root: Path, names: list[str], labels: list[int]) -> None:
    """Pack the original JPEG bytes of ``names`` (relative to ``root``) into one ``.npz``."""
    blobs = [(root / n).read_bytes() for n in names]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        data=np.frombuffer(b"".join(blobs), dtype=np.uint8),
        offsets=offsets,
        labels=np.asarray(labels, dtype=np.int64),
        names=np.asarray(names),
    )


def load_embedded(path: Path = EMBEDDED_PATH) -> ImageSet:
    """Decode the embedded subset into an :class:`ImageSet` (about a second for 1,000 JPEGs)."""
    if not path.exists():
        raise FileNotFoundError(f"embedded EuroSAT subset {str(path)!r} is missing; reinstall satedge")
    with np.load(path) as f:
        data, offsets, labels, names = f["data"], f["offsets"], f["labels"], f["names"]
    images = np.empty((len(labels), 64, 64, 3), dtype=np.uint8)
    for i in range(len(labels)):
        blob = data[offsets[i] : offsets[i + 1]].tobytes()
        with Image.open(io.BytesIO(blob)) as im:
            images[i] = np.asarray(im.convert("RGB"))
    return ImageSet(
        images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
        labels=torch.from_numpy(labels),
        names=tuple(str(n) for n in names),
        classes=EUROSAT_CLASSES,
    )
