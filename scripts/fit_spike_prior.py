"""Fit a trained spike link's Bernoulli prior on training images and save the checkpoint with it.

    python scripts/fit_spike_prior.py checkpoints/satvit_small_snn_cut3_ssa.ckpt \\
        --out checkpoints/satvit_small_snn_cut3_ssa.ckpt     # the 18,900 training images, ~8 min

The weights do not change; payloads of the new checkpoint are range-coded under the prior (header
flag ``FLAG_RANS``) whenever that is shorter than packed bits. Test images never enter the prior.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    from research.data.eurosat import EuroSATDataModule
    from research.eval.evaluate import random_subset
    from research.tasks.spike_prior import fit_spike_prior

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a CodecTask checkpoint with a spike link")
    p.add_argument("--out", required=True, help="where the checkpoint with the prior goes")
    p.add_argument("--root", default="../shared/data/eurosat_rgb",
                   help="EuroSAT ImageFolder (the embedded subset is drawn from the test split, "
                        "so it is not offered)")
    p.add_argument("--split-file", default="research/data/splits/eurosat_rgb_seed0.json",
                   help="the recorded train/val/test split")
    p.add_argument("--limit", type=int, default=None, help="training images (default: all)")
    args = p.parse_args(argv)
    dm = EuroSATDataModule(root=args.root, split_file=args.split_file)
    images, _ = random_subset(*dm.subset("train").tensors, args.limit)
    report = fit_spike_prior(args.checkpoint, args.out, images)
    print(json.dumps({"checkpoint": args.out, **report}, indent=1))


if __name__ == "__main__":
    main()
