"""Train the ``pan`` and ``rgb20m`` embedders of the serving layer on the real EuroSAT training split.

Each embedder learns to give the frozen encoder of ``--checkpoint`` the features of the RGB tile
(:func:`research.serving.modalities.train_embedder`); the script then reports land-cover accuracy
per modality on the validation split (the test split stays for the serving evaluation) and saves
the weights, statistics, losses and this command to ``--out``.

    python scripts/train_modality_embedders.py --steps 500 \\
        --out checkpoints/embedders_satvit_small_full_mae_long.pt
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

import torch

from research.data.eurosat import EuroSATDataModule
from research.paths import DEFAULT_CLASSIFIER
from research.serving.modalities import (
    landcover_accuracy,
    save_embedder_weights,
    train_embedders,
)
from research.tasks.loading import load_classifier


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=DEFAULT_CLASSIFIER)
    p.add_argument("--root", default="../shared/data/eurosat_rgb")
    p.add_argument("--split-file", default="research/data/splits/eurosat_rgb_seed0.json")
    p.add_argument("--modalities", nargs="+", default=["pan", "rgb20m"])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="checkpoints/embedders_satvit_small_full_mae_long.pt")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    clf = load_classifier(args.checkpoint)
    vit = clf.model.vit.eval()
    dm = EuroSATDataModule(root=args.root, split_file=args.split_file)
    dm.setup()
    images, labels = dm.data.images, dm.data.labels
    train = images[torch.from_numpy(dm.split.train)]
    val, val_y = images[torch.from_numpy(dm.split.val)], labels[torch.from_numpy(dm.split.val)]
    tic = time.perf_counter()
    embedders, stats, losses = train_embedders(vit, args.modalities, train, clf.mean, clf.std,
                                               steps=args.steps, batch_size=args.batch_size,
                                               lr=args.lr)
    val_acc = {}
    for name in ["rgb", *args.modalities]:
        pe = vit.patch_embed if name == "rgb" else embedders[name]
        mean, std = (clf.mean, clf.std) if name == "rgb" else stats[name]
        val_acc[name] = landcover_accuracy(vit, name, pe, val, val_y, mean, std)
        print(f"{name}: land-cover accuracy on the validation split {val_acc[name]:.4f}")
    meta = {"checkpoint": str(args.checkpoint), "train_images": len(train),
            "val_images": len(val), "steps": args.steps, "batch_size": args.batch_size,
            "lr": args.lr, "val_landcover_acc": val_acc,
            "final_loss": {k: float(sum(v[-20:]) / len(v[-20:])) for k, v in losses.items()},
            "losses": losses, "seconds": time.perf_counter() - tic,
            "command": "python " + shlex.join(["scripts/train_modality_embedders.py", *sys.argv[1:]])}
    save_embedder_weights(args.out, embedders, stats, meta)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
