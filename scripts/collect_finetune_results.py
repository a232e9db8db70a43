"""Test every committed fine-tuned checkpoint on the full EuroSAT test split; write the numbers.

    python scripts/collect_finetune_results.py                  # every row -> results/foundation_eurosat.json
    python scripts/collect_finetune_results.py --rows full_ema  # only some rows (the others are kept)

Each row is one ``satedge test ...`` command (its arguments are stored with the numbers, so
``tests/test_committed_checkpoints.py`` replays exactly what was run), through the same entry point.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from research.cli import run_lightning
from research.models.finetune import trainable_parameters
from research.tracking import machine_description

TTA8 = ["--model.init_args.test_views", "8"]
# row name -> (experiment config, committed checkpoint, extra CLI arguments)
ROWS: dict[str, tuple[str, str, list[str]]] = {
    "head": ("finetune_head", "satvit_small_head.ckpt", []),
    "lora": ("finetune_lora", "satvit_small_lora.ckpt", []),
    "full": ("finetune_full", "satvit_small_full.ckpt", []),
    "full_long": ("finetune_full", "satvit_small_full_long.ckpt", []),
    "full_long_tta8": ("finetune_full", "satvit_small_full_long.ckpt", TTA8),
    "full_ema": ("finetune_full", "satvit_small_full_ema.ckpt", []),
    "full_ema_tta8": ("finetune_full", "satvit_small_full_ema.ckpt", TTA8),
    "head_mae_long": ("finetune_head", "satvit_small_head_mae_long.ckpt", []),
    "lora_mae_long": ("finetune_lora", "satvit_small_lora_mae_long.ckpt", []),
    "full_mae_long": ("finetune_full", "satvit_small_full_mae_long.ckpt", []),
    "full_mae_long_tta8": ("finetune_full", "satvit_small_full_mae_long.ckpt", TTA8),
}


def test_args(row: str) -> tuple[Path, list[str]]:
    """The checkpoint of ``row`` and the ``satedge`` arguments that measure it."""
    config, name, extra = ROWS[row]
    ckpt = Path("checkpoints") / name
    return ckpt, ["test", "--config", f"experiments/foundation/{config}.yaml", "--ckpt_path", str(ckpt), *extra]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--out", type=Path, default=Path("results/foundation_eurosat.json"))
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for row in args.rows:
        ckpt, argv = test_args(row)
        if not ckpt.exists():
            print(f"skip {row}: {ckpt} missing")
            continue
        start = time.perf_counter()
        cli = run_lightning(argv)
        metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
        results[row] = {
            "test_acc": metrics["test/acc"],
            "test_loss": metrics["test/loss"],
            "test_images": len(cli.datamodule.subset("test")),
            "test_views": cli.model.hparams.test_views,
            "trainable_params": trainable_parameters(cli.model),
            "total_params": sum(p.numel() for p in cli.model.parameters()),
            "checkpoint": str(ckpt),
            "args": argv,
            "command": "satedge " + " ".join(argv),
            "test_wall_s": round(time.perf_counter() - start, 1),
            "hardware": machine_description(),
        }
        print(row, results[row])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
