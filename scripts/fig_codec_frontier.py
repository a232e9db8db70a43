"""Rate-compute-accuracy frontier at split 0: entropic students against image and token codecs.

Trains one variable-rate student and one fixed-rate student per rate weight (same epochs each),
measures every rate level with real bytes, and joins the rate-accuracy sweep's rows with on-board
FLOPs. The experiment is :func:`research.eval.codec_frontier.codec_frontier`.

    python scripts/fig_codec_frontier.py --quick                 # satvit_tiny, embedded subset
    python scripts/fig_codec_frontier.py --out results/codec_frontier
                                                                 # satvit_small, full EuroSAT
    python scripts/fig_codec_frontier.py --out results/codec_frontier_gpu --no-train \
        --join results/codec_frontier/rows.jsonl                 # students trained elsewhere
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from research.eval.codec_frontier import FrontierConfig, check_resumable, codec_frontier


def parse_args(argv: list[str] | None = None) -> FrontierConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="satvit_tiny on the embedded subset")
    parser.add_argument("--out", type=Path, default=Path("outputs/codec_frontier"))
    parser.add_argument("--backbone", default=None)
    parser.add_argument("--pretrained", default=None, help="fine-tuned weights (.ckpt/.pt)")
    parser.add_argument("--root", default=None, help="EuroSAT ImageFolder (default: full set)")
    parser.add_argument("--split-file", default=None)
    parser.add_argument("--lambdas", type=float, nargs="+", default=None,
                        help="rate weights, coarsest first (one rate level each)")
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--hidden-dim", type=int, default=64, help="on-board analysis width")
    parser.add_argument("--epochs", type=int, default=None, help="per model")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--distill-weight", type=float, default=1.0)
    parser.add_argument("--feature-distill-weight", type=float, default=1.0)
    parser.add_argument("--latent-grid", type=int, default=2,
                        help="side of the coded latent grid (the 8x8 tokens are pooled to it)")
    parser.add_argument("--finetune", default="lora", choices=["frozen", "head", "lora"],
                        help="what adapts on the ground besides the codec (lora: ground blocks)")
    parser.add_argument("--separate-lambdas", type=float, nargs="+", default=None,
                        help="rate weights that get a fixed-rate student (default: every one)")
    parser.add_argument("--no-separate", dest="separate", action="store_false",
                        help="train only the variable-rate student")
    parser.add_argument("--baseline-rows", type=Path, default=None,
                        help="rate-accuracy rows.jsonl to join (full default: results/rate_accuracy)")
    parser.add_argument("--views", type=int, default=1,
                        help="augmented views of each training image in the token cache")
    parser.add_argument("--no-train", dest="train", action="store_false",
                        help="train nothing: draw every student row already in --out/rows.jsonl")
    parser.add_argument("--join", type=Path, nargs="+", default=None,
                        help="other frontier runs' rows.jsonl whose students join the figure")
    return FrontierConfig(**vars(parser.parse_args(argv))).with_defaults()


def main(argv: list[str] | None = None) -> dict:
    try:  # bad options and an out dir of another training budget: one line, not a traceback
        config = parse_args(argv)
        check_resumable(config)
    except ValueError as err:
        raise SystemExit(f"fig_codec_frontier.py: error: {err}") from None
    if torch.cuda.is_available():  # TF32 matmuls on a GPU; CPU arithmetic stays as it was
        torch.set_float32_matmul_precision("high")
    return codec_frontier(config)


if __name__ == "__main__":
    main()
