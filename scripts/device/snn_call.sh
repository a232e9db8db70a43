#!/bin/bash
# The main device call (issues 25 and 22), on the machine warmed by snn_call1.sh (EuroSAT part a
# in /tmp/eurosat): the spiking satellite part at cut 3 trained for longer, the learned ANN codec at
# cut 3 given the same epochs, and the issue-22 views-8 students beside them. As run on
# 2026-12-04 (results/snn_cut_gpu, results/codec_frontier_gpu):
#   run(carry=[".whl", ".gpu/pa"]): bash scripts/device/snn_call1.sh
#   run(carry=[".whl", ".gpu/pb"]): E1=12 EL=15 E2=10 T1=180 T2=180 E22=6 L22=470 bash scripts/device/snn_call.sh
#   (the issue-22 sweep, the link and the ANN codec ran; stage 1 failed: jsonargparse was missing)
#   run(carry=[".whl", ".gpu/pb"]): SKIP22=1 SKIPANN=1 E1=12 EL=15 E2=10 T1=200 T2=170 bash scripts/device/snn_call.sh
# .whl: the wheels of sweep.sh plus jsonargparse, docstring-parser and typeshed-client (LightningCLI).
# Stage 1: the three spiking blocks behind the identity link (E1 epochs, at most T1 seconds).
# Beside it: the spike link (k=16, one step, Bernoulli prior, MLP ground decoder) and the ANN
# codec (8 tokens merged, hidden 64), each EL epochs on the ANN's cached cut-3 tokens.
# Stage 2: blocks and link together (joint) and the link alone on frozen blocks (E2 epochs, T2).
# Only 8 files come back from a call: snn_s1.* and the logs came in a fourth, short call that
# exported /tmp/s/s1's last.ckpt as below and copied its metrics.csv and the logs to $OUT.
E1=${E1:?}; EL=${EL:?}; E2=${E2:?}; T1=${T1:-240}; T2=${T2:-180}  # T: seconds
# SKIP22=1 leaves out the issue-22 sweep, SKIPANN=1 the ANN codec (both done on 2026-12-04).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 WANDB_MODE=disabled SATEDGE_CACHE=/tmp/cache
[ -d /tmp/eurosat/AnnualCrop ] || { echo "EuroSAT part a is gone: the machine was not kept"; exit 3; }
tar xzf .gpu/pb/b.tar.gz -C /tmp/eurosat; echo "images: $(find /tmp/eurosat -name '*.jpg' | wc -l)"
S=/tmp/s; mkdir -p $S; t=$(date +%s)
stamp() { echo "$1 at $(( $(date +%s)-t )) s"; }
[ -n "$SKIP22" ] || SKIP_PIP=1 OMP=3 VIEWS=8 EPOCHS=${E22:-6} LIMIT=${L22:-470} RUNS=scripts/device/runs_views8.txt bash scripts/device/sweep.sh > $S/i22.log 2>&1 &
fit() {  # NAME CONFIG [overrides]: satedge fit on /tmp/eurosat, logs and checkpoints under $S/NAME
  name=$1; config=$2; shift 2
  OMP_NUM_THREADS=2 python3 -m research.cli fit --config $config --data.init_args.root /tmp/eurosat \
    --trainer.enable_progress_bar false --trainer.default_root_dir $S/$name --trainer.logger.init_args.save_dir $S \
    --trainer.logger.init_args.name $name "$@" > $S/$name.log 2>&1; stamp "$name rc=$?"; }
fit s1 experiments/snn/cut3_ssa_blocks.yaml --trainer.max_epochs $E1 --trainer.max_time $(printf 00:00:%02d:%02d $((T1/60)) $((T1%60))) & p1=$!
rate="python3 scripts/fig_rate_accuracy.py --root /tmp/eurosat --splits 3 --merge-tokens 1 --distill-weight 1 --epochs $EL --skip-images"
(OMP_NUM_THREADS=2 $rate --out $S/link --codec spike --latent-dim 16 --num-steps 1 --spike-prior --hidden-dim 256 --lambdas 1e-3 > $S/link.log 2>&1; stamp "link rc=$?") & p2=$!
([ -n "$SKIPANN" ] || OMP_NUM_THREADS=2 ${rate/--merge-tokens 1/--merge-tokens 8} --out $S/ann3 --hidden-dim 64 --lambdas 1e-3 > $S/ann3.log 2>&1; stamp "ann3 rc=$?") & p3=$!
wait $p1 $p2 $p3
S1=$(ls $S/s1/version_*/checkpoints/last.ckpt | tail -1); LINK=$(ls $S/link/codecs/*.ckpt | head -1); echo "stage 1: $S1; link: $LINK"
[ -n "$S1" ] && [ -n "$LINK" ] || { echo "stage 1 or the link failed: no stage 2"; tail -5 $S/s1.log $S/link.log; wait; exit 5; }
grep -h "val/acc" $S/s1/version_*/metrics.csv >/dev/null 2>&1 && tail -3 $S/s1/version_*/metrics.csv
init=(--model.init_args.init_from "[\"$S1\", \"$LINK\"]" --trainer.max_epochs $E2 --trainer.max_time $(printf 00:00:%02d:%02d $((T2/60)) $((T2%60))))
link=(--model.init_args.latent_dim 16 --model.init_args.hidden_dim 256 --model.init_args.codec_options '{"prior": true}' --model.init_args.lmbda 1e-3)
fit joint experiments/snn/cut3_ssa.yaml "${link[@]}" "${init[@]}" & p4=$!
fit frozen experiments/snn/cut3_ssa_prior.yaml "${init[@]}" & p5=$!
wait $p4 $p5
keep="--keep-float32 model.vit.blocks.0. --keep-float32 model.vit.blocks.1. --keep-float32 model.vit.blocks.2. --keep-float32 model.vit.patch_embed. --keep-float32 model.vit.pos_embed --keep-float32 model.vit.cls_token"
for n in s1 joint frozen; do c=$(ls $S/$n/version_*/checkpoints/last.ckpt 2>/dev/null | tail -1); [ -n "$c" ] && python3 scripts/export_checkpoint.py codec $c $OUT/snn_$n.ckpt $keep --set-data root=../shared/data/eurosat_rgb > /dev/null 2>&1; cp $S/$n/version_*/metrics.csv $OUT/snn_$n.metrics.csv 2>/dev/null; done
cp $S/link/codecs/*.ckpt $OUT/link.ckpt; [ -n "$SKIPANN" ] || cp $S/ann3/codecs/*.ckpt $OUT/ann3.ckpt; cp $S/link/rows.jsonl $OUT/link_rows.jsonl; [ -n "$SKIPANN" ] || cp $S/ann3/rows.jsonl $OUT/ann3_rows.jsonl
wait; stamp done; cat $S/i22.log; tar czf $OUT/snn_logs.tgz -C $S --exclude='*.ckpt' --exclude=cache . ; ls -la $OUT
