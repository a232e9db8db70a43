#!/bin/bash
# Device call 2 (issue 22): split-0 students (one per line of RUNS) trained in parallel on one GPU
# from one token cache, each measured with real bytes on the 5,400 test images. EPOCHS from call
# 1's probe.
#
# EuroSAT (88 MiB) is larger than what one device call carries (64 MiB with the working tree), so
# it travels as two tarballs of the ImageFolder, .gpu/pa/a.tar.gz and .gpu/pb/b.tar.gz (made with
# `tar czf` from ../shared/data/eurosat_rgb, split by sorted file name), in two calls on one warm
# machine. As run on 2026-12-04 (results/codec_frontier_gpu):
#   run(carry=[".whl", ".gpu/pa"]): bash scripts/device/call1.sh
#   run(carry=[".gpu/pa"]):         mkdir -p /tmp/eurosat && tar xzf .gpu/pa/a.tar.gz -C /tmp/eurosat
#   run(carry=[".whl", ".gpu/pb"]): EPOCHS=60 LIMIT=440 bash scripts/device/sweep.sh
# (the four runs of scripts/device/runs_60ep.txt). The views-8 students ran from snn_call.sh
# (a later call, beside the issue-25 trainings, so 3 threads each):
#   OMP=3 VIEWS=8 EPOCHS=6 LIMIT=470 RUNS=scripts/device/runs_views8.txt bash scripts/device/sweep.sh
# .whl holds the wheels the device image lacks (compressai, pytorch-msssim, snntorch, sgp4,
# cryptography, cffi, pycparser), fetched as the device README says.
E=${EPOCHS:?set EPOCHS}; B=${BATCH:-256}; LIMIT=${LIMIT:-420}; VIEWS=${VIEWS:-1}  # OMP: threads a run
RUNS=${RUNS:-scripts/device/runs_60ep.txt}  # one training per line: NAME fig_codec_frontier options
# SKIP_PIP=1: /tmp/site is filled already (by a caller whose other runs import from it meanwhile)
[ -n "$SKIP_PIP" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled SATEDGE_CACHE=/tmp/cache
# part a was unpacked to /tmp/eurosat by the call before (same machine, still warm)
[ -d /tmp/eurosat/AnnualCrop ] || { echo "EuroSAT part a is gone: the machine was not kept"; exit 3; }
[ "$(find /tmp/eurosat -name '*.jpg' | wc -l)" = 27000 ] || tar xzf .gpu/pb/b.tar.gz -C /tmp/eurosat
echo "images: $(find /tmp/eurosat -name '*.jpg' | wc -l)"
W=/tmp/w; mkdir -p $W; t=$(date +%s)
python3 scripts/device/prep_frontier.py /tmp/eurosat $W/prep $VIEWS > $W/prep.log 2>&1 || { tail -20 $W/prep.log; exit 4; }
echo "prep $(( $(date +%s)-t )) s"; grep uncompressed $W/prep.log
common="--root /tmp/eurosat --epochs $E --batch-size $B --views $VIEWS --no-separate --baseline-rows none"
run() { name=$1; shift; OMP_NUM_THREADS=${OMP:-4} timeout $LIMIT python3 scripts/fig_codec_frontier.py $common --out $W/$name "$@" > $W/$name.log 2>&1; echo "$name rc=$? at $(( $(date +%s)-t )) s"; }
names=$(grep -v '^#' $RUNS | awk 'NF {print $1}')
while read -r name args; do
  case "$name" in ''|'#'*) continue ;; esac
  run $name $args &
done < $RUNS
wait
for n in $names; do grep -h "level" $W/$n.log | grep -v Epoch; cp $W/$n/codecs/student_variable.ckpt $OUT/$n.ckpt 2>/dev/null; done
tar czf $OUT/sweep.tgz -C $W --exclude='*.ckpt' --exclude=runs . && ls -la $OUT
