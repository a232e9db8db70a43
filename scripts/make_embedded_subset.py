"""Write the embedded EuroSAT subset (100 real images per class from the full test split).

    python scripts/make_embedded_subset.py --root ../shared/data/eurosat_rgb
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from research.data.embedded import EMBEDDED_PATH, write_embedded
from research.data.imagefolder import EUROSAT_CLASSES, list_image_files
from research.data.splits import load_split

SPLIT_FILE = Path("research/data/splits/eurosat_rgb_seed0.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default="../shared/data/eurosat_rgb")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    files = list_image_files(Path(args.root))
    names = tuple(rel for rel, _ in files)
    labels = np.array([label for _, label in files])
    test = load_split(SPLIT_FILE, names).test
    rng = np.random.default_rng(args.seed)
    chosen = np.concatenate(
        [np.sort(rng.choice(test[labels[test] == c], args.per_class, replace=False)) for c in range(len(EUROSAT_CLASSES))]
    )
    write_embedded(EMBEDDED_PATH, Path(args.root), [names[i] for i in chosen], labels[chosen].tolist())
    print(f"wrote {len(chosen)} images to {EMBEDDED_PATH} ({EMBEDDED_PATH.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
