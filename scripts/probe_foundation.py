"""k-NN accuracy of frozen foundations on EuroSAT: compare MAE checkpoints without fine-tuning.

    python scripts/probe_foundation.py checkpoints/satvit_small_mae.pt outputs/pretrain_mae_long/.../last.ckpt
    python scripts/probe_foundation.py --quick checkpoints/satvit_small_mae.pt   # embedded 1,000 images

Each weights file (an MAE state dict or Lightning checkpoint, anything ``load_backbone_weights``
reads) is loaded into the backbone; its average-pooled features of the training images are the
references and those of ``--split`` the queries. Prints one JSON row per file and writes them,
with the command, to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from research.data import EuroSATDataModule
from research.data.features import extract_features
from research.eval.probe import knn_accuracy
from research.models import build_backbone, load_backbone_weights
from research.tracking import machine_description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", nargs="+", type=Path)
    parser.add_argument("--backbone", default="satvit_small")
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="the embedded 1,000-image subset")
    parser.add_argument("--root", default="../shared/data/eurosat_rgb")
    parser.add_argument("--split-file", default="research/data/splits/eurosat_rgb_seed0.json")
    parser.add_argument("--out", type=Path, default=Path("results/foundation_knn.json"))
    args = parser.parse_args()
    if args.quick:
        images = EuroSATDataModule(root=None, batch_size=256)
    else:
        images = EuroSATDataModule(root=args.root, batch_size=256, split_file=args.split_file)
    images.setup()
    rows = []
    for path in args.weights:
        start = time.perf_counter()
        vit = build_backbone(args.backbone, num_classes=0)
        load_backbone_weights(vit, path)
        vit.eval()
        reference, reference_labels = extract_features(vit, images, "train")
        query, query_labels = extract_features(vit, images, args.split)
        accuracy = knn_accuracy(reference, reference_labels, query, query_labels, k=args.k)
        rows.append({
            "weights": str(path), "backbone": args.backbone, "split": args.split, "k": args.k,
            "knn_acc": accuracy, "reference_images": len(reference), "query_images": len(query),
            "wall_s": round(time.perf_counter() - start, 1),
        })
        print(json.dumps(rows[-1]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "command": "python " + " ".join(sys.argv),
        "hardware": machine_description(),
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
