"""ANN against spiking satellite parts per cut: accuracy, real bytes and on-board energy.

    python scripts/fig_snn_cut.py --out results/snn_cut          # 5,400 test images, ~10 min on 2 cores
    python scripts/fig_snn_cut.py --quick --out outputs/figures/snn_cut   # embedded subset, 200 images, ~2 min
    python scripts/fig_snn_cut.py --replot --out results/snn_cut  # redraw from the JSON

Measures the ANN split with float32 tokens at each of ``--cuts`` and every ``CodecTask``
checkpoint in ``--checkpoints`` (learned ANN codecs, and spiking on-board blocks with the spike
link), on the same test images, through the real payloads. On-board energy is counted from the
operations and spikes on those images (patch embedding, blocks before the cut, link encoder) and
priced under every device profile. Writes ``<out>/snn_cut.{csv,json,png,pdf}``; the JSON also
holds, per spiking row, its accuracy gap, byte ratio and energy saving against the ANN rows at
its cut.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ANN_CODEC_CUT3 = "outputs/ann_codec_cut3/codecs/split3_merge=8,hidden=64,distill=1,lambda=0.001.ckpt"
CHECKPOINTS = [
    ANN_CODEC_CUT3,                                   # learned ANN codec at cut 3 (11.8 MB: not committed)
    "checkpoints/satvit_small_codec_split5_m8.ckpt",  # learned ANN codec at cut 5
    "checkpoints/satvit_small_snn_cut3_ssa.ckpt",     # spiking blocks + spike link at cut 3
]
MAKERS = {ANN_CODEC_CUT3: "python scripts/fig_rate_accuracy.py --out outputs/ann_codec_cut3 --splits 3 "
                          "--merge-tokens 8 --hidden-dim 64 --distill-weight 1 --lambdas 1e-3 "
                          "--epochs 10 --skip-images   # about 12 min on 2 CPU cores"}


def labelled_checkpoint(value: str) -> tuple[str | None, str]:
    """``LABEL=PATH`` -> ``(LABEL, PATH)``; a plain path -> ``(None, PATH)``. Codec file names
    hold '=' themselves (``split3_merge=8,...``), so only a prefix without '/' is a label, and
    a value naming an existing file is always a path."""
    from research.paths import resolve_path

    label, sep, path = value.partition("=")
    if not sep or "/" in label or not label or Path(resolve_path(value)).is_file():
        return None, value
    return label, path


def main(argv: list[str] | None = None) -> None:
    from research.data.eurosat import EuroSATDataModule
    from research.eval.evaluate import random_subset
    from research.eval.spiking_cut import (
        plot_cut_rows,
        ratios,
        sweep,
        write_cut_rows,
    )
    from research.paths import DEFAULT_CLASSIFIER, resolve_path

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/eurosat_rgb")
    p.add_argument("--reference", default=str(DEFAULT_CLASSIFIER),
                   help="the fine-tuned ANN classifier for the identity rows")
    p.add_argument("--cuts", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5, 6])
    p.add_argument("--checkpoints", nargs="*", default=CHECKPOINTS,
                   help="CodecTask checkpoints, each PATH or LABEL=PATH (the label tells apart "
                        "rows of one family, link and cut)")
    p.add_argument("--limit", type=int, default=None, help="test images (default: all)")
    p.add_argument("--quick", action="store_true", help="embedded subset, 200 images")
    p.add_argument("--replot", action="store_true", help="redraw from <out>/snn_cut.json")
    p.add_argument("--out", default="outputs/figures/snn_cut")
    args = p.parse_args(argv)
    if args.replot:
        record = json.loads((Path(args.out) / "snn_cut.json").read_text())
        print("wrote", ", ".join(str(q) for q in plot_cut_rows(record["rows"], args.out)))
        return
    entries = [labelled_checkpoint(q) for q in args.checkpoints]
    missing = [q for _, q in entries if not Path(resolve_path(q)).is_file()]
    if missing and args.quick:  # a smoke run: measure what is there
        print("quick: skipping missing " + ", ".join(missing))
        entries = [(label, q) for label, q in entries if q not in missing]
    elif missing:
        p.error("missing checkpoints: " + "; ".join(
            f"{q} (make it with: {MAKERS[q]})" if q in MAKERS else q for q in missing))
    if args.quick:
        args.root, args.limit = None, args.limit or 200
    dm = EuroSATDataModule(root=args.root)
    images, labels = random_subset(*dm.subset("test").tensors, args.limit)
    rows = sweep(args.reference, args.cuts, [resolve_path(q) for _, q in entries],
                 images, labels, checkpoint_labels=[label for label, _ in entries])
    meta = {"command": "python " + shlex.join([sys.argv[0], *(argv or sys.argv[1:])]),
            "images": len(images), "source": args.root or "embedded",
            "counted": "patch embedding, blocks before the cut, link encoder (compress); "
                       "norms, biases, softmax and entropy coding not counted"}
    paths = write_cut_rows(rows, meta, args.out)
    for r in rows:
        print(f"{r['name']:>28}: {100 * r['accuracy']:6.2f}%  {r['bytes_per_inference']:9.1f} B  "
              + "  ".join(f"{k[9:]} {1e6 * v:8.2f} uJ" for k, v in r.items()
                          if k.startswith("energy_j_")))
    for r in ratios(rows):
        print(f"{r['snn']} vs {r['ann']}: {r['accuracy_gap_points']:+.2f} pts, bytes x"
              f"{r['bytes_ratio']:.2f}, energy saving cmos45nm x{r['energy_saving_cmos45nm']:.1f}, "
              f"loihi x{r['energy_saving_loihi']:.2f}, jetson_nano x{r['energy_saving_jetson_nano']:.2f}")
    print("wrote", ", ".join(str(q) for q in paths.values()))


if __name__ == "__main__":
    main()
