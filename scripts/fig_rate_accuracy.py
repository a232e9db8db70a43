"""Rate-accuracy figure: learned token codecs at several cuts against image and token baselines.

Image codecs (raw, PNG, JPEG, WebP), token baselines and learned codecs (one per cut, rate weight
and token merge), all measured with real bytes on the same test images. Writes
``rate_accuracy.{csv,json,png,pdf}`` to ``--out``; every row lands in ``--out/rows.jsonl`` first,
so a rerun skips what is there and a sweep can be run in parts. The experiment is
:func:`research.eval.rate_accuracy.rate_accuracy`; this script parses the arguments.

    python scripts/fig_rate_accuracy.py --quick      # satvit_tiny, embedded subset: ~1-2 min CPU
    python scripts/fig_rate_accuracy.py --out results/rate_accuracy
                                                     # satvit_small from the fine-tuned checkpoint,
                                                     # full EuroSAT, cuts {0, 3, 5, 6}
"""

from __future__ import annotations

import argparse
from pathlib import Path

from research.eval.rate_accuracy import RateAccuracyConfig, rate_accuracy


def parse_args(argv: list[str] | None = None) -> RateAccuracyConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="satvit_tiny on the embedded subset")
    parser.add_argument("--out", type=Path, default=RateAccuracyConfig.out)
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--pretrained", default=None, help="fine-tuned weights (.ckpt/.pt)")
    parser.add_argument("--root", default=None, help="EuroSAT ImageFolder (default: full set)")
    parser.add_argument("--split-file", default=None)
    parser.add_argument("--splits", type=int, nargs="+", default=None)
    parser.add_argument("--lambdas", type=float, nargs="+", default=None)
    parser.add_argument("--codec", default="factorized")
    parser.add_argument("--latent-dim", type=int, default=None)
    parser.add_argument("--num-steps", type=int, default=None,
                        help="spike link: timesteps T (with --latent-dim k: T x k bits per token)")
    parser.add_argument("--spike-prior", action="store_true",
                        help="spike link: range-code under a Bernoulli prior (rate trained by lambda)")
    parser.add_argument("--merge-tokens", type=int, nargs="+", default=None,
                        help="k: code each k x k group of tokens as one unit (8: the whole grid)")
    parser.add_argument("--hidden-dim", type=int, default=None,
                        help="width of the codec transforms (default: the token width); small "
                             "widths keep a merged codec from memorising the training set")
    parser.add_argument("--distill-weight", type=float, default=0.0,
                        help="> 0: also match the uncompressed split model's predictions (KL)")
    parser.add_argument("--views", type=int, default=1,
                        help="dihedral views of each training image in the token cache (1..8)")
    parser.add_argument("--skip-images", action="store_true",
                        help="measure no image baselines (another run into the same --out does)")
    parser.add_argument("--finetune", default="frozen", choices=["frozen", "head", "lora", "full"])
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--ref-epochs", type=int, default=4, help="quick mode's reference model")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    return RateAccuracyConfig(**vars(parser.parse_args(argv))).with_defaults()


def main(argv: list[str] | None = None) -> dict:
    return rate_accuracy(parse_args(argv))


if __name__ == "__main__":
    main()
