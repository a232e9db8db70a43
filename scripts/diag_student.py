"""Short diagnostic trainings of the split-0 student, behind the defaults of ``FrontierConfig``.

Each variant trains one fixed-rate student (lambda 1e-3, one pass over the first 9,600 cached
training tokens: 150 steps of 64) and prints its validation accuracy (first 1,000 validation
tokens, quantised as the coder would), estimated bits and real bytes (200 payloads).
About 2 minutes a variant on 2 idle CPU cores; ``results/codec_frontier/diagnostics.txt``
holds the lines it printed.

    python scripts/diag_student.py A B C D E H I
"""

from __future__ import annotations

import sys
import time

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from encoders import estimated_bits
from research.eval.codec_frontier import FrontierConfig
from research.eval.rate_accuracy import cut_tokens, reference_model
from research.tasks.codec import CodecTask

VARIANTS = {  # init: EntropyBottleneck init_scale; fd: feature distillation; grid: latent grid
    "A": {"init": 10.0, "fd": 0.0},
    "B": {"init": 1.0, "fd": 0.0},
    "C": {"init": 1.0, "fd": 1.0},
    "D": {"init": 1.0, "fd": 1.0, "grid": 2},
    "E": {"init": 1.0, "fd": 1.0, "grid": 1, "latent": 64},
    "G": {"init": 1.0, "fd": 1.0, "grid": 2, "lr": 3e-3},
    "H": {"init": 1.0, "fd": 1.0, "grid": 2, "ft": "lora"},
    "I": {"init": 1.0, "fd": 1.0, "grid": 2, "lam": 0.0},
}


class _Tokens(L.LightningDataModule):
    def __init__(self, data: TensorDataset) -> None:
        super().__init__()
        self.data = data

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=64, shuffle=True)

    def on_after_batch_transfer(self, batch: list[torch.Tensor], dataloader_idx: int) -> list[torch.Tensor]:
        return [batch[0].float(), batch[1]]


def main(argv: list[str] | None = None) -> None:
    names = sys.argv[1:] if argv is None else argv
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise SystemExit(f"variants {unknown or names}; expected some of {list(VARIANTS)}")
    config = FrontierConfig().with_defaults()
    reference = reference_model(config)
    tokens = cut_tokens(config, reference.weights, reference.dm, 0)
    tokens.setup()
    train_x, train_y = tokens.data["train"].tensors
    val_x, val_y = (t[:1000] for t in tokens.data["val"].tensors)
    data = _Tokens(TensorDataset(train_x[:9600], train_y[:9600]))
    for name in names:
        v = VARIANTS[name]
        torch.manual_seed(0)
        task = CodecTask(
            codec="student", split_index=0, backbone=config.backbone, pretrained=reference.weights,
            latent_dim=v.get("latent", 32), hidden_dim=64, finetune=v.get("ft", "frozen"),
            codec_options={"init_scale": v["init"], "latent_grid": v.get("grid")},
            lmbda=v.get("lam", 1e-3), distill_weight=1.0, feature_distill_weight=v["fd"],
            lr=v.get("lr", 1e-3), aux_lr=1e-3, warmup_epochs=0.05)
        start = time.perf_counter()
        L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, limit_val_batches=0).fit(task, datamodule=data)
        task.eval()
        task.link.update(force=True)
        with torch.no_grad():
            out = task.model.forward_parts(val_x.float())
            acc = (out["logits"].argmax(1) == val_y).float().mean().item()
            bits = estimated_bits(out["likelihoods"]).mean().item()
            real = sum(map(len, task.link.compress(val_x[:200].float()))) / 200
        print(name, v, f"acc {acc:.4f} est bits {bits:.0f} real B {real:.1f} "
              f"({time.perf_counter() - start:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
