"""Training throughput of the Lightning path against a plain PyTorch loop, in one run.

Both paths train the same ClassificationTask model on the same batches (same DataModule, same
augmentation and normalisation, same optimizer and schedule); only the loop differs. Runs
alternate (plain, Lightning, plain, Lightning, ...) so drift in machine load hits both; the
median images/s of each is reported with their ratio. Target: Lightning / plain >= 0.9.

    python scripts/bench_train.py                      # satvit_small, embedded EuroSAT subset
    python scripts/bench_train.py --quick              # satvit_tiny, seconds
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import lightning as L
import torch

from research.data import EuroSATDataModule
from research.tasks import ClassificationTask
from research.tasks.timing import StepTimer


def make_task(args: argparse.Namespace) -> ClassificationTask:
    torch.manual_seed(0)
    return ClassificationTask(backbone=args.backbone, finetune="full", warmup_epochs=0.0)


def run_lightning(args: argparse.Namespace, dm: EuroSATDataModule) -> float:
    timer = StepTimer(args.warmup)
    trainer = L.Trainer(
        max_steps=args.warmup + args.steps, accelerator="cpu", logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[timer],
    )
    trainer.fit(make_task(args), datamodule=dm)
    return args.steps * args.batch_size / (timer.end - timer.start)


def run_plain(args: argparse.Namespace, dm: EuroSATDataModule) -> float:
    task = make_task(args)
    task.train()
    optimizer = torch.optim.AdamW(task.parameter_groups(), lr=task.hparams.lr, betas=(0.9, 0.95))
    start = 0.0
    step = 0
    while step < args.warmup + args.steps:
        for batch in dm.train_dataloader():
            if step == args.warmup:
                start = time.perf_counter()
            images, labels = dm.prepare_batch(batch, train=True)
            loss = task.criterion(task.model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == args.warmup + args.steps:
                break
    return args.steps * args.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="satvit_small")
    parser.add_argument("--root", default=None, help="EuroSAT ImageFolder (default: embedded subset)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="satvit_tiny, few steps")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/bench_train.json"))
    args = parser.parse_args()
    if args.quick:
        args.backbone, args.steps, args.repeats = "satvit_tiny", 10, 2
    dm = EuroSATDataModule(root=args.root, batch_size=args.batch_size)
    dm.setup()
    plain, lightning = [], []
    for _ in range(args.repeats):
        plain.append(run_plain(args, dm))
        lightning.append(run_lightning(args, dm))
    result = {
        "backbone": args.backbone, "batch_size": args.batch_size, "steps": args.steps,
        "threads": torch.get_num_threads(),
        "plain_images_per_s": plain, "lightning_images_per_s": lightning,
        "plain_median": statistics.median(plain), "lightning_median": statistics.median(lightning),
    }
    result["ratio_lightning_over_plain"] = result["lightning_median"] / result["plain_median"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"plain loop : {result['plain_median']:.1f} images/s  {[round(x, 1) for x in plain]}")
    print(f"Lightning  : {result['lightning_median']:.1f} images/s  {[round(x, 1) for x in lightning]}")
    print(f"ratio Lightning/plain = {result['ratio_lightning_over_plain']:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
