"""Re-measure codec checkpoints trained on a lent GPU on this machine's CPU (issue 22, item 4).

Same 5,400 test images, real payloads coded and decoded here; the JSON written beside the GPU's
rows shows what changes across devices (the encoder's float rounding may move a symbol, the
ground model's a prediction).

    python scripts/device/remeasure_on_cpu.py checkpoints/satvit_small_student_split0.ckpt \
        outputs/gpu22/var.ckpt:0,1,2,3 --out results/codec_frontier_gpu/cpu_remeasure.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import lightning as L

from research.data import EuroSATDataModule
from research.tasks.loading import load_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="PATH or PATH:LEVEL,LEVEL (rate levels of a variable-rate codec)")
    parser.add_argument("--root", default="../shared/data/eurosat_rgb")
    parser.add_argument("--split-file", default="research/data/splits/eurosat_rgb_seed0.json")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    dm = EuroSATDataModule(root=args.root, batch_size=256, split_file=args.split_file)
    results = {}
    for spec in args.checkpoints:
        path, _, levels = spec.partition(":")
        task, _ = load_task(path)
        for level in [int(v) for v in levels.split(",")] if levels else [None]:
            task.hparams.rate_index = level
            metrics = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                                accelerator="cpu").test(task, datamodule=dm, verbose=False)[0]
            key = f"{Path(path).name}" + ("" if level is None else f"@rate={level}")
            results[key] = {"acc": metrics["test/acc"], "bytes_per_inference": metrics["test/bytes_per_inference"]}
            print(key, results[key], flush=True)
    command = "python " + " ".join(sys.argv)
    args.out.write_text(json.dumps({"device": "cpu", "command": command, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
