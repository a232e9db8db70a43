"""Rate against accuracy of spike links on a frozen spiking part's cut tokens (issue 25).

    python scripts/fig_spike_link_rate.py --out results/spike_link_rate      # ~60 min on 2 cores
    python scripts/fig_spike_link_rate.py --out results/spike_link_rate --replot
    python scripts/fig_spike_link_rate.py --quick     # embedded subset, 2 links, 1 epoch, ~2 min

Caches the cut tokens of ``--part`` (the committed spiking part at cut 3) and of the reference
ANN once, then trains one spike link per ``--settings`` entry on them with the reference's ground
frozen and measures it on the 5,400 test images through real payloads
(:mod:`research.eval.spike_link_rate`). ``--budget`` draws the byte budget (2x the learned ANN
codec's 37.5 B at cut 3).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SETTINGS = ["16,1,2e-4", "16,1,5e-4", "16,1,1e-3", "64,2,2e-4", "64,2,5e-4", "64,2,1e-3"]


def main(argv: list[str] | None = None) -> None:
    from research.eval.spike_link_rate import LinkSetting, cache_cut_tokens, plot, sweep

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", default="checkpoints/satvit_small_snn_cut3_ssa.ckpt")
    p.add_argument("--reference", default="checkpoints/satvit_small_full_mae_long.ckpt")
    p.add_argument("--cut", type=int, default=3)
    p.add_argument("--settings", nargs="+", default=SETTINGS, metavar="K,MERGE,LAMBDA[,ENC_HIDDEN]",
                   help="spike links: channels per unit, tokens merged per side, rate weight, "
                        "and optionally the spiking hidden neurons of the on-board encoder")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--limit", type=int, default=None, help="images per split (default: all)")
    p.add_argument("--budget", type=float, default=75.0, help="bytes per inference to draw")
    p.add_argument("--cache", default="outputs/spike_link_rate/cut_tokens.pt")
    p.add_argument("--out", default="outputs/spike_link_rate")
    p.add_argument("--replot", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="the embedded 1,000 images with their own split, 2 links, 1 epoch")
    args = p.parse_args(argv)
    root, split_file = "../shared/data/eurosat_rgb", "research/data/splits/eurosat_rgb_seed0.json"
    if args.quick:
        root = split_file = None
        args.epochs, args.cache = 1, "outputs/spike_link_rate_quick/cut_tokens.pt"
        if args.settings == SETTINGS:
            args.settings = ["16,1,1e-3", "64,2,1e-3"]
        if args.out == "outputs/spike_link_rate":
            args.out = "outputs/figures-quick/spike_link_rate"
    out = Path(args.out)
    if args.replot:
        record = json.loads((out / "spike_link_rate.json").read_text())
        plot(record["rows"], record["float_test_acc"], out, record.get("budget_bytes"))
        return
    settings = []
    for text in args.settings:
        try:
            k, m, lmbda, *hidden = text.split(",")
            if len(hidden) > 1 or (hidden and int(hidden[0]) < 1):
                raise ValueError(text)
            settings.append(LinkSetting(int(k), int(m), float(lmbda),
                                        encoder_hidden=int(hidden[0]) if hidden else None))
        except ValueError:
            p.error(f"--settings {text!r}: expected K,MERGE,LAMBDA[,ENC_HIDDEN] (ENC_HIDDEN >= 1 "
                    "spiking neurons in the on-board encoder), e.g. 64,2,5e-4 or 64,2,1e-4,256")
    from research.tasks.loading import load_classifier

    cache = cache_cut_tokens(args.part, args.reference, args.cut, Path(args.cache), root=root,
                             split_file=split_file, limit=args.limit)
    ground = load_classifier(args.reference, split_index=args.cut, head_placement="ground").model
    given = sys.argv[1:] if argv is None else argv
    command = "python scripts/fig_spike_link_rate.py " + shlex.join(given)
    sweep(cache, ground, settings, out, epochs=args.epochs, budget_bytes=args.budget,
          command=command)


if __name__ == "__main__":
    main()
