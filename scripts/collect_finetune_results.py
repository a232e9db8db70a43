"""Test every committed fine-tuned checkpoint on the full EuroSAT test split; write the numbers.

    python scripts/collect_finetune_results.py            # -> results/foundation_eurosat.json

Each number comes from ``satedge test --config experiments/finetune_<mode>.yaml --ckpt_path
checkpoints/satvit_small_<mode>.ckpt``, run here through the same entry point.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from research.cli import run_lightning
from research.models.finetune import trainable_parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["head", "lora", "full"])
    parser.add_argument("--out", type=Path, default=Path("results/foundation_eurosat.json"))
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for mode in args.modes:
        ckpt = Path(f"checkpoints/satvit_small_{mode}.ckpt")
        if not ckpt.exists():
            print(f"skip {mode}: {ckpt} missing")
            continue
        start = time.perf_counter()
        cli = run_lightning(["test", "--config", f"experiments/finetune_{mode}.yaml", "--ckpt_path", str(ckpt)])
        metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
        results[mode] = {
            "test_acc": metrics["test/acc"],
            "test_loss": metrics["test/loss"],
            "test_images": len(cli.datamodule.subset("test")),
            "trainable_params": trainable_parameters(cli.model),
            "total_params": sum(p.numel() for p in cli.model.parameters()),
            "checkpoint": str(ckpt),
            "command": f"satedge test --config experiments/finetune_{mode}.yaml --ckpt_path {ckpt}",
            "test_wall_s": round(time.perf_counter() - start, 1),
            "hardware": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, CPU",
        }
        print(mode, results[mode])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
