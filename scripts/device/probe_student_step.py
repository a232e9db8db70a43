"""Time one training step of the split-0 student (satvit_small, LoRA) on this machine.

Random cut tokens stand in for the cached ones: a step's time does not depend on their values.
Prints the seconds per step (the 30 after 10 warm-up steps) as JSON, so a sweep can size its epochs.
"""
import json
import sys

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from research.models.presets import get_preset
from research.paths import DEFAULT_CLASSIFIER
from research.tasks.codec import CodecTask
from research.tasks.timing import StepTimer

batch, grid, latent = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_float32_matmul_precision("high")
task = CodecTask(codec="student", split_index=0, finetune="lora", backbone="satvit_small",
                 pretrained=DEFAULT_CLASSIFIER, latent_dim=latent, hidden_dim=64,
                 codec_options={"num_rates": 4, "latent_grid": grid}, lmbdas=[3e-3, 1e-3, 3e-4, 1e-4],
                 distill_weight=1.0, feature_distill_weight=1.0, lr=1e-3, aux_lr=1e-3, warmup_epochs=0.1)
data = TensorDataset(torch.randn(batch * 45, 64, get_preset("satvit_small").embed_dim).half(), torch.randint(0, 10, (batch * 45,)))


clock = StepTimer(warmup=10)
loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)
task.on_after_batch_transfer = lambda b, i: [b[0].float(), b[1]]
L.Trainer(max_steps=40, accelerator="auto", logger=False, enable_checkpointing=False, callbacks=[clock],
          enable_model_summary=False, enable_progress_bar=False, num_sanity_val_steps=0,
          limit_val_batches=0).fit(task, loader)
step_s = clock.seconds_per_step
print(json.dumps({"batch": batch, "grid": grid, "latent": latent, "step_s": step_s,
                  "epoch_s_18900": step_s * (18900 // batch)}))
