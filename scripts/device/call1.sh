#!/bin/bash
# Device call 1 (issue 22): GPU-only tests, an end-to-end smoke of the frontier on CUDA, and the
# step time of the split-0 student with four trainings sharing the GPU. Brings EuroSAT part a.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
python3 -c "import torch, lightning, compressai; print('torch', torch.__version__, 'lightning', lightning.__version__, 'compressai', compressai.__version__)"
python3 -m pytest tests/encoders/test_student.py -q -rs 2>&1 | tail -6
t=$(date +%s); timeout 120 python3 scripts/fig_codec_frontier.py --quick --out /tmp/quick > $OUT/quick.log 2>&1; echo "quick frontier rc=$? in $(( $(date +%s)-t )) s"; grep -E "level|uncompressed|variable" $OUT/quick.log | tail -6
for i in 1 2 3 4; do OMP_NUM_THREADS=4 timeout 150 python3 scripts/device/probe_student_step.py 256 2 32 > /tmp/probe_$i.log 2>&1 & done; wait
grep -h step_s /tmp/probe_*.log | tee $OUT/probe.jsonl; tail -3 /tmp/probe_1.log; cp /tmp/probe_1.log $OUT/
ls -la .gpu/pa
