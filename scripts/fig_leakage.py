"""What the cut leaks: image reconstructions from the tokens or codec output at every cut.

    python scripts/fig_leakage.py --out results/leakage              # about 10 min on 2 cores
    python scripts/fig_leakage.py --quick --out outputs/figures/leakage   # embedded data, seconds
    python scripts/fig_leakage.py --replot --out results/leakage    # redraw from the files
    python scripts/fig_leakage.py --attacker grid --cuts 0 6 --links identity int4 \
        --out results/leakage_grid                                   # the whole-grid attacker

Writes ``<out>/leakage.{csv,json,png,pdf}``: per (link, cut), bytes per inference, accuracy and
the PSNR/SSIM of a learned per-token inversion decoder (and, at split 0, of the pseudo-inverse of
the patch embedding), with example reconstructions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> None:
    from research.eval.leakage import LeakageConfig, leakage_sweep, read_leakage, write_leakage

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="../shared/data/eurosat_rgb")
    p.add_argument("--cuts", type=int, nargs="+", default=[0, 2, 4, 5, 6])
    p.add_argument("--links", nargs="+", default=["identity", "int8", "int4"])
    p.add_argument("--train-images", type=int, default=2000)
    p.add_argument("--test-images", type=int, default=500)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--no-codec", action="store_true", help="skip the committed split-5 codec")
    p.add_argument("--attacker", default="token", choices=["token", "grid"],
                   help="learned inverter: per token, or over the whole patch grid")
    p.add_argument("--hidden", type=int, default=None, help="inverter width (token 512, grid 256)")
    p.add_argument("--quick", action="store_true", help="embedded data, cuts 0 and 3, 1 epoch")
    p.add_argument("--replot", action="store_true", help="redraw from <out>'s JSON and examples")
    p.add_argument("--out", default="outputs/figures/leakage")
    args = p.parse_args(argv)
    if args.replot:
        rows, extra = read_leakage(args.out)
        paths = write_leakage(rows, extra, args.out)
        print("wrote", ", ".join(str(p) for p in paths.values()))
        return
    config = LeakageConfig(root=args.root, cuts=args.cuts, links=args.links,
                           train_images=args.train_images, test_images=args.test_images,
                           epochs=args.epochs, out=args.out, attacker=args.attacker,
                           hidden=args.hidden or (512 if args.attacker == "token" else 256))
    if args.no_codec:
        config.codecs = {}
    if args.quick:
        config.root, config.cuts, config.links = None, [0, 3], ["identity", "int4"]
        config.train_images, config.test_images, config.epochs = 200, 50, 1
    rows, extra = leakage_sweep(config)
    extra["meta"]["command"] = "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])
    paths = write_leakage(rows, extra, args.out)
    for r in rows:
        print(f"{r['link']:>14} cut {r['cut']}: {r['bytes_per_inference']:9.0f} B, accuracy "
              f"{100 * r['accuracy']:.2f}%, PSNR learned {r['psnr_learned_db']:.1f} dB, linear "
              f"{r['psnr_linear_db']:.1f} dB")
    print("wrote", ", ".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    main()
