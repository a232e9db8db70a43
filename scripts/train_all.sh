#!/usr/bin/env bash
# Fine-tune the default split ViT in every mode from the committed MAE checkpoint (full EuroSAT).
# Logs in outputs/logs/; checkpoints in outputs/finetune_<mode>/csv/version_*/checkpoints/.
set -euo pipefail
mkdir -p outputs/logs
for mode in "$@"; do
  .venv/bin/satedge fit --config "experiments/foundation/finetune_${mode}.yaml" > "outputs/logs/finetune_${mode}.log" 2>&1
done
