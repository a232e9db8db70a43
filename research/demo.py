"""``satedge demo``: the whole system end to end on the embedded default, offline, on a CPU.

1. builds the 6x11 demo shell's contact plan (SGP4, 6 ground stations, optical ISLs);
2. runs a short satellite-ground federated fine-tuning of the split model against fully on-board
   federated fine-tuning on that plan (simulated wall-clock time);
3. loads the committed task-oriented codec (trained at split 5 by the rate-accuracy sweep), or
   trains one at the paper's cut (after patch embedding) if it is missing;
4. evaluates per-inference accuracy, bits, energy and latency of every scheme (split with token
   baselines and the codec, raw / PNG / JPEG image downlink, a spiking satellite part at cut 3,
   everything on board) on the same captures, with on-board energy also priced on event-driven
   45 nm logic, prints the table and writes the ledger and figures;
5. the ledger under load: Sentinel-2-like scenes over a small sweep of captures per orbit on
   shared, one-transfer-at-a-time links; prints each scheme's p95 latency, delivered fraction
   and knee, and writes the load figure.

Every step writes under ``--out`` (default ``outputs/demo``) and logs to W&B offline.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from research.paths import DEFAULT_CLASSIFIER, REPO_ROOT

ORBIT = "experiments/orbit/demo_6x11.yaml"
SCENARIO = "experiments/eval/demo.yaml"
LOAD_SCENARIO = "experiments/eval/demo_load.yaml"
# Trained on the full training split by scripts/fig_rate_accuracy.py: split 5, the whole 8x8 token
# grid as one coded unit, 32-wide transforms, distilled from the uncompressed model, lambda 1e-4.
COMMITTED_CODEC = "checkpoints/satvit_small_codec_split5_m8.ckpt"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="satedge demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("outputs/demo"))
    p.add_argument("--captures", type=int, default=120, help="inferences per scheme")
    p.add_argument("--codec-epochs", type=int, default=3)
    p.add_argument("--codec-lambda", type=float, default=3e-3, help="rate weight of the codec")
    p.add_argument("--skip-fed", action="store_true", help="skip the federated step")
    p.add_argument("--fed-config", default="experiments/fed/quick.yaml",
                   help="federated run to compare (collaborative vs on-board)")
    p.add_argument("--loads", type=float, nargs="+", default=[2, 8],
                   help="captures per satellite per orbit for the load sweep (step 5)")
    return p


def _step(n: int, title: str) -> float:
    print(f"\n[{n}/5] {title}", flush=True)
    return time.perf_counter()


def train_codec(out: Path, epochs: int, lmbda: float) -> Path:
    """The committed codec, else a factorized codec at split 0 trained on the embedded train split."""
    import lightning as L

    from research.data import EuroSATDataModule
    from research.models.weights import export_task_checkpoint
    from research.tasks import CodecTask

    committed = REPO_ROOT / COMMITTED_CODEC
    if committed.exists():
        print(f"loading the committed codec {COMMITTED_CODEC} (see checkpoints/manifest.json)")
        return committed
    path = out / "codec_split0.ckpt"
    if path.exists():
        print(f"loading the codec trained by an earlier demo run: {path}")
        return path
    torch.manual_seed(0)
    dm = EuroSATDataModule(root=None, batch_size=64)
    task = CodecTask(backbone="satvit_small", pretrained=str(REPO_ROOT / DEFAULT_CLASSIFIER),
                     split_index=0, head_placement="ground", finetune="frozen",
                     codec="factorized", latent_dim=8, lmbda=lmbda, lr=1e-2, aux_lr=1e-2)
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, default_root_dir=str(out))
    trainer.fit(task, datamodule=dm)
    task.model.link.update(force=True)
    export_task_checkpoint(trainer, path, keep_float32=("model.link.",))
    return path


def run_fed(config: str, out: Path) -> dict:
    """Collaborative vs on-board federated fine-tuning of the head (research.fed), 7-day plan."""
    from research.fed.compare import compare
    from research.fed.config import load_config as load_fed_config

    base = load_fed_config(REPO_ROOT / config)
    return compare(base, out / "fed", ("collaborative", "onboard"), out / "fed" / "runs",
                   command="satedge demo", cache_dir=str(out / "fed" / "cache"))


def run_load(loads: list[float], out: Path, plan) -> dict:
    """A small load sweep (research.eval.load) and its table: where each scheme's knee is."""
    from research.eval.load import load_sweep, write_sweep
    from research.eval.scenario import load_scenario

    scenario = load_scenario(REPO_ROOT / LOAD_SCENARIO)
    rows, meta = load_sweep(scenario, loads, plan=plan)
    write_sweep(rows, meta, out)
    sensor = meta["sensor"]
    print(f"{sensor['name']}: {sensor['tiles_per_scene']:,} tiles per scene; its duty cycle "
          f"gives {meta['realistic_per_orbit']:.1f} scenes per satellite per orbit; orbit "
          f"{meta['orbital_period_s'] / 60:.0f} min")
    head = f"{'scheme':>14} {'B/tile':>8}" + "".join(f" | {x:>5g}/orbit: p95, delivered"
                                                    for x in loads) + " | knee"
    print(head)
    for name in dict.fromkeys(r["scheme"] for r in rows):
        mine = [r for r in rows if r["scheme"] == name]
        cells = "".join(f" | {r['latency_p95_s'] / 60:>11.1f} min, {100 * r['delivered_fraction']:>5.1f}%"
                        for r in mine)
        knee = meta["knees"][name]
        print(f"{name:>14} {mine[0]['bytes_per_tile']:>8.0f}{cells} | "
              f"{'none' if knee is None else f'{knee:g}/orbit'}")
    return meta


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.environ.setdefault("WANDB_MODE", "offline")
    from research.eval.cli import run_scenario
    from research.eval.scenario import SchemeSpec, load_scenario
    from research.orbit import load_config

    start = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    t = _step(1, f"contact plan of {ORBIT}")
    plan = load_config(REPO_ROOT / ORBIT).build()
    plan.save(args.out / "plan.npz")
    summary = plan.summary()
    print(f"{summary['satellites']} satellites, {summary['stations']} stations, "
          f"{summary['contacts']} ground contacts in {summary['horizon_s'] / 3600:.0f} h "
          f"({time.perf_counter() - t:.1f} s)")

    t = _step(2, "federated fine-tuning: satellite-ground split vs fully on board")
    if args.skip_fed:
        print("skipped (--skip-fed)")
    else:
        run_fed(args.fed_config, args.out)
        print(f"({time.perf_counter() - t:.0f} s)")

    t = _step(3, "task-oriented codec (load, or train if missing)")
    codec = train_codec(args.out, args.codec_epochs, args.codec_lambda)
    print(f"codec: {codec} ({time.perf_counter() - t:.0f} s)")

    t = _step(4, "per-inference ledger: accuracy, bits, energy, latency")
    scenario = load_scenario(REPO_ROOT / SCENARIO)
    scenario.captures = replace(scenario.captures, count=args.captures)
    split = torch.load(codec, map_location="cpu", weights_only=False)["hyper_parameters"]
    scenario.schemes.insert(4, SchemeSpec(name=f"split{split['split_index']}-codec",
                                          kind="split", link="codec", checkpoint=str(codec)))
    run_scenario(scenario, args.out / "eval")
    print(f"({time.perf_counter() - t:.0f} s)")

    t = _step(5, "the ledger under load: shared links, Sentinel-2-like scenes")
    run_load(args.loads, args.out / "load", plan)
    print(f"({time.perf_counter() - t:.0f} s)")
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s; files under {args.out}")
    return 0
