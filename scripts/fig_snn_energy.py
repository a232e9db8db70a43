"""Spiking vs ANN task heads: test accuracy against measured energy per inference, per profile.

Trains the ViT's Linear head, an ANN MLP head, spiking heads at each T and input encoding
(``direct``, ``if``), spiking heads without a hidden layer and the ANN-to-SNN conversion of the
MLP head on the frozen split ViT's cached features, tests each on the test images and counts the
energy of the spikes really emitted. Writes ``snn_energy.{csv,json,png,pdf}``; every measured
variant lands in ``records.jsonl`` first, so an interrupted run resumes (delete that file to start
over). The experiment is :func:`research.eval.snn_energy.snn_energy`; this script parses the
arguments.

    python scripts/fig_snn_energy.py --quick   # embedded 1,000 images, 1 epoch, T in {1,2,4}
    python scripts/fig_snn_energy.py --out results/snn_energy   # full EuroSAT, T in {1,2,4,8}
"""

from __future__ import annotations

import argparse
from pathlib import Path

from research.eval.snn_energy import SnnEnergyConfig, snn_energy


def parse_args(argv: list[str] | None = None) -> SnnEnergyConfig:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny run on the embedded subset")
    p.add_argument("--out", type=Path, default=SnnEnergyConfig.out)
    p.add_argument("--backbone", default=None, help="default: satvit_small (quick: MAE weights)")
    p.add_argument("--pretrained", default=None, help="weights; default: full ckpt (quick: MAE)")
    p.add_argument("--root", default=None, help="EuroSAT root; default: full set (quick: embedded)")
    p.add_argument("--steps", type=int, nargs="+", default=None, help="T values")
    p.add_argument("--hidden", type=int, nargs="+", default=[256])
    p.add_argument("--encodings", nargs="+", default=["direct", "if"],
                   help="SNN input encodings; direct runs the first layer as dense MACs, like the "
                        "ANN; if makes it spike-driven")
    p.add_argument("--rate-penalty", type=float, default=0.1,
                   help="firing-rate penalty of the 'if' SNN heads (direct ones get none)")
    p.add_argument("--linear-steps", type=int, nargs="*", default=[1, 2],
                   help="T values of spiking heads without a hidden layer (IF input), the "
                        "counterparts of the linear head")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--limit-batches", type=float, default=1.0, help="fraction of training batches")
    p.add_argument("--batch-size", type=int, default=128, help="test images per batch")
    p.add_argument("--feature-batch-size", type=int, default=None,
                   help="cached features per training batch (default 512; quick: 64)")
    p.add_argument("--lr", type=float, default=4e-3)
    p.add_argument("--accelerator", default="auto")
    try:
        return SnnEnergyConfig(**vars(p.parse_args(argv))).with_defaults()
    except FileNotFoundError as err:  # the full run's checkpoint is not there yet
        raise SystemExit(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    snn_energy(parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
