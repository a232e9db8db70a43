#!/bin/bash
# Device call 1 (issue 25): wheels into /tmp/site, EuroSAT part a into /tmp/eurosat, and the step
# time of the spiking satellite part at cut 3 (stage 1 and stage 2), to size snn_call.sh's epochs.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
mkdir -p /tmp/eurosat && tar xzf .gpu/pa/a.tar.gz -C /tmp/eurosat
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc
timeout 100 python3 scripts/device/probe_spiking_step.py 128 identity 2>&1 | tail -1 &
timeout 100 python3 scripts/device/probe_spiking_step.py 128 spike 2>&1 | tail -1
wait; echo "images: $(find /tmp/eurosat -name '*.jpg' | wc -l)"
