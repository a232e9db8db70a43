"""Accuracy against epsilon for differentially private federated fine-tuning (3 seeds each).

Runs the non-private config and every (level, epsilon, seed) on one plan, partition and cached
features (:mod:`research.fed.privacy_curve`); runs resume from their per-round checkpoints.

    python scripts/fig_fed_privacy.py --quick                       # embedded subset, ~2 min
    python scripts/fig_fed_privacy.py --out results/fed_privacy     # full EuroSAT, ~50 min
    python scripts/fig_fed_privacy.py --out results/fed_privacy --levels satellite
    python scripts/fig_fed_privacy.py --out results/fed_privacy --replot
    python scripts/fig_fed_privacy.py --out results/fed_privacy --server-opt 1,0 2,0 1,0.5 \
        --epsilons 8 --seeds 0                                       # FedAvgM, same grid for all
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from research.fed.config import FedConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="embedded subset, 2 epsilons, 2 seeds")
    p.add_argument("--runs", default=None, help="run folders (checkpoints; default "
                   "outputs/fed/privacy_runs[_quick]); use another for another base config")
    p.add_argument("--config", default=None, help="base YAML (default experiments/fed/...)")
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY.SUB=VALUE",
                   help="override one value of the base config for every run, e.g. --set "
                        "train.server_momentum=0.9 (repeatable)")
    p.add_argument("--out", default=None, help="output folder (default outputs/fed/privacy[_quick])")
    p.add_argument("--levels", nargs="+", default=["satellite", "image"],
                   choices=["satellite", "image"])
    p.add_argument("--epsilons", nargs="+", type=float, default=None,
                   help="targets at delta 1e-5 (default 1 2 4 8 16)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="default 0 1 2")
    p.add_argument("--clip-satellite", type=float, default=1.0,
                   help="L2 clip of a satellite's update (chosen at epsilon 8, seed 0, from "
                        "0.3 0.5 1 1.5 2 3 5)")
    p.add_argument("--clip-image", type=float, default=1.0, help="L2 clip of an image's gradient")
    p.add_argument("--image-batch", type=int, default=None,
                   help="expected DP-SGD batch of the image level (default: the config's)")
    p.add_argument("--regime", nargs="+", default=None, metavar="PLANESxSATS",
                   help="instead: satellite-level DP at the first --epsilons value against "
                        "Walker shells, e.g. 6x11 12x11 12x22 (the base scenario's stations)")
    p.add_argument("--server-opt", nargs="+", default=None, metavar="LR,MOMENTUM[,ROUNDS]",
                   help="instead: FedAvgM settings (server lr, server momentum, optionally "
                        "rounds) at the first --epsilons value and seed, each for non-private, "
                        "clipping only and DP, e.g. 1,0 2,0 1,0.5 2,0,10 (the same grid for "
                        "every arm)")
    p.add_argument("--replot", action="store_true", help="only redraw from <out>")
    args = p.parse_args(argv)
    from research.fed.privacy_curve import regime, replot, sweep

    out = Path(args.out or ("outputs/fed/privacy_quick" if args.quick else "outputs/fed/privacy"))
    if args.replot:  # whichever of the curve and the server grid <out> holds
        if (out / "fed_privacy_server_opt.json").is_file():
            from research.fed.privacy_tuning import replot_server_opt

            replot_server_opt(out)
        if (out / "fed_privacy_runs.json").is_file():
            replot(out)
        elif not (out / "fed_privacy_server_opt.json").is_file():
            p.error(f"--replot: {out} holds neither fed_privacy_runs.json nor "
                    "fed_privacy_server_opt.json")
        return 0
    try:
        base = load_config(args.config or ("experiments/fed/quick.yaml" if args.quick
                                           else "experiments/fed/collaborative.yaml"),
                           args.overrides)
    except (FedConfigError, FileNotFoundError) as err:  # a bad --set or --config, by name
        p.error(str(err))
    epsilons = args.epsilons or ([2.0, 8.0] if args.quick else [1.0, 2.0, 4.0, 8.0, 16.0])
    seeds = args.seeds if args.seeds is not None else ([0, 1] if args.quick else [0, 1, 2])
    command = "python scripts/fig_fed_privacy.py " + " ".join(sys.argv[1:] if argv is None
                                                               else argv)
    if args.regime:
        from research.fed.scenarios import parse_shells

        try:
            shells = parse_shells(args.regime)
        except ValueError as err:
            p.error(f"--regime: {err}")
        regime(base, out, shells, epsilon=(args.epsilons or [8.0])[0],
               seeds=args.seeds if args.seeds is not None else [0], clip=args.clip_satellite,
               runs=Path(args.runs or "outputs/fed/privacy_regime_runs"), command=command)
        print(f"wrote {out}")
        return 0
    clips = {"satellite": args.clip_satellite, "image": args.clip_image}
    if args.server_opt:
        from research.fed.privacy_tuning import server_opt_grid

        try:
            settings = [tuple(float(v) for v in s.split(",")) for s in args.server_opt]
            if any(len(t) not in (2, 3) or not all(math.isfinite(v) for v in t)
                   or (len(t) == 3 and t[2] != int(t[2])) for t in settings):
                raise ValueError
        except ValueError:
            p.error(f"--server-opt: each setting is LR,MOMENTUM[,ROUNDS] (e.g. 2,0.5 or 2,0,10), "
                    f"got {args.server_opt}")
        for t in settings:  # out-of-range values: named before any run starts
            try:
                base.replace(**{"train.server_lr": t[0], "train.server_momentum": t[1],
                                "train.rounds": int(t[2]) if len(t) > 2 else base.train.rounds})
            except FedConfigError as err:
                p.error(f"--server-opt {','.join(f'{v:g}' for v in t)}: {err}")
        server_opt_grid(base, out, settings, levels=args.levels,
                        epsilon=(args.epsilons or [8.0])[0],
                        seed=(args.seeds or [0])[0], clips=clips,
                        runs=Path(args.runs or "outputs/fed/privacy_server_opt_runs"),
                        command=command)
        print(f"wrote {out}")
        return 0
    overrides = {"image": {"train.batch_size": args.image_batch}} if args.image_batch else {}
    summary = sweep(base, out, levels=args.levels, epsilons=epsilons, seeds=seeds,
                    clips=clips,
                    runs=Path(args.runs or ("outputs/fed/privacy_runs"
                                            + ("_quick" if args.quick else ""))),
                    overrides=overrides, command=command.strip())
    base_acc = summary["non_private"]["accuracy_mean_pct"]
    print(f"non-private {base_acc:.2f}%")
    for e in summary["private"]:
        print(f"{e['level']:>9} eps {e['target_epsilon']:>5g}: {e['accuracy_mean_pct']:.2f} "
              f"+- {e['accuracy_std_pct']:.2f}% (gap {e['gap_pts']:.2f} pts, spent "
              f"{e['epsilon_spent_max']:.2f})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
