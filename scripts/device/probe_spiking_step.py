"""Time one training step of the spiking satellite part at cut 3 (issue 25) on this machine.

Random images stand in for EuroSAT: a step's time does not depend on their values (the spiking
blocks skip calibration here; thresholds change spike counts a little, not the dense work).
Prints seconds per step (the 30 after 10 warm-up steps) and per 18,900-image epoch as JSON, to
size the epochs.

    python scripts/device/probe_spiking_step.py [BATCH] [CODEC]   # CODEC: identity (stage 1) or spike
"""
import json
import sys

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from research.paths import DEFAULT_CLASSIFIER
from research.tasks.codec import CodecTask
from research.tasks.timing import StepTimer

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 128
codec = sys.argv[2] if len(sys.argv) > 2 else "identity"
link = {"latent_dim": 16, "num_steps": 1, "hidden_dim": 256} if codec == "spike" else {}
task = CodecTask(backbone="satvit_small", num_classes=10, split_index=3, finetune="frozen",
                 pretrained=DEFAULT_CLASSIFIER, codec=codec, spiking_blocks=[0, 1, 2], block_steps=2,
                 spiking_attention="ssa", distill_weight=1.0, feature_distill_weight=1.0,
                 cut_distill_weight=5.0, rate_penalty=0.5, lmbda=0.0, lr=1e-3, warmup_epochs=0.1, **link)
task._calibrated = True
data = TensorDataset(torch.randn(batch * 45, 3, 64, 64), torch.randint(0, 10, (batch * 45,)))


clock = StepTimer(warmup=10)
L.Trainer(max_steps=40, accelerator="auto", logger=False, enable_checkpointing=False, callbacks=[clock],
          enable_model_summary=False, enable_progress_bar=False, num_sanity_val_steps=0,
          limit_val_batches=0).fit(task, DataLoader(data, batch_size=batch, shuffle=True, drop_last=True))
step_s = clock.seconds_per_step
print(json.dumps({"batch": batch, "codec": codec, "step_s": step_s, "epoch_s_18900": step_s * (18900 // batch)}))
