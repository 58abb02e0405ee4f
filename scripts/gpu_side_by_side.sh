#!/usr/bin/env bash
# The GPU comparison of issue 11: mobilejax's train step in bfloat16 against `peer_torch.py --device cuda --amp
# --compile` (channels_last, bf16 autocast), alternated, >= 3 pairs, in one sitting on one GPU.
#
# usage: [MODELS="mobilenet_v2 mobilenet_v3_large"] [BATCH=256] [REPS=3] [STEPS=20] [VARIANTS="compile eager"]
#        [CIFAR_BATCH=512] [BUDGET_S=430] scripts/gpu_side_by_side.sh PEER_PY OUT_DIR [PEER_PYTHON]
#
# Cold compiles are long on a GPU (~1 min each for XLA and for inductor) and CPU-bound, so every compile cache
# (MOBILEJAX_CACHE_DIR for XLA, inductor's own cache) is warmed first by running all the programs at once; those
# warm-up runs' timings are thrown away. Then scripts/side_by_side.sh alternates ours and the peer at 224 px, and,
# while less than BUDGET_S seconds have passed, at the CIFAR shape (MobileNetV2 small-input stem, 32 px).
# Writes OUT_DIR/train_b${BATCH}_bf16.jsonl, OUT_DIR/train_b${BATCH}_bf16_shift.jsonl,
# OUT_DIR/cifar_b${CIFAR_BATCH}_bf16.jsonl and OUT_DIR/env.txt;
# summarise each with python scripts/side_by_side_table.py FILE.
set -u
peer=$1; out=$2; peer_python=${3:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)
ours=${MOBILEJAX:-$here/.venv/bin/mobilejax}; [ -x "$ours" ] || ours="python3 -m mobilejax.cli"
export MOBILEJAX="$ours" MOBILEJAX_CACHE_DIR=${MOBILEJAX_CACHE_DIR:-/tmp/mobilejax-cache}
# several processes share the GPU while the caches warm: no process takes 75% of its memory up front
export XLA_PYTHON_CLIENT_PREALLOCATE=false
device=${DEVICE:-cuda}; batch=${BATCH:-256}; cifar_batch=${CIFAR_BATCH:-512}
models=${MODELS:-mobilenet_v2 mobilenet_v3_large}
mkdir -p "$out"; : > "$out/warm.log"; start=$(date +%s)
{ date -u; nvidia-smi -L 2>/dev/null; nproc
  $( [ -x "$here/.venv/bin/python" ] && echo "$here/.venv/bin/python" || echo python3) -c 'import jax, flax, optax; print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__, jax.devices())'
  $peer_python -c 'import torch; print("torch", torch.__version__)'; } > "$out/env.txt" 2>&1

# 1. warm every compile cache at once
# shellcheck disable=SC2086
for m in $models; do
  $ours bench "$m" --resolution 224 --batch "$batch" --dtype bfloat16 --steps 1 --json >> "$out/warm.log" 2>&1 &
  $peer_python "$peer" "$m" --batch "$batch" --device "$device" --amp --compile --steps 1 >> "$out/warm.log" 2>&1 &
done
$ours bench mobilenet_v2 --resolution 32 --batch "$cifar_batch" --dtype bfloat16 --option small_input=True \
  --steps 1 --json >> "$out/warm.log" 2>&1 &
$peer_python "$peer" mobilenet_v2 --resolution 32 --batch "$cifar_batch" --small-input --device "$device" --amp \
  --compile --steps 1 >> "$out/warm.log" 2>&1 &
# shellcheck disable=SC2086
for m in $models; do  # the shifted multiply-add depthwise kernel (the CPU fast path), one run each below
  $ours bench "$m" --resolution 224 --batch "$batch" --dtype bfloat16 --depthwise-impl shift --steps 1 --json \
    >> "$out/warm.log" 2>&1 &
done
wait
echo "caches warm after $(( $(date +%s) - start )) s" | tee -a "$out/env.txt"

# 2. the alternated runs at 224 px
DEVICE=$device DTYPES=bfloat16 BATCH=$batch REPS=${REPS:-3} STEPS=${STEPS:-20} MODELS="$models" \
  VARIANTS=${VARIANTS:-compile eager} bash "$here/scripts/side_by_side.sh" "$peer" "$out/train_b${batch}_bf16.jsonl" \
  "$peer_python"
echo "224 px done after $(( $(date +%s) - start )) s" | tee -a "$out/env.txt"

# 3. one run each with depthwise_impl=shift instead of XLA's grouped convolution (exploratory, not alternated)
# shellcheck disable=SC2086
for m in $models; do
  $ours bench "$m" --resolution 224 --batch "$batch" --dtype bfloat16 --depthwise-impl shift --steps "${STEPS:-20}" \
    --json >> "$out/train_b${batch}_bf16_shift.jsonl"
done

# 4. the CIFAR shape, one pair at a time while the budget lasts
for rep in $(seq "${REPS:-3}"); do
  [ $(( $(date +%s) - start )) -lt "${BUDGET_S:-430}" ] || { echo "CIFAR shape: budget spent after $((rep - 1)) pairs" | tee -a "$out/env.txt"; break; }
  DEVICE=$device DTYPES=bfloat16 BATCH=$cifar_batch RES=32 REPS=1 REP_FIRST=$rep STEPS=${STEPS:-20} MODELS=mobilenet_v2 \
    SMALL_INPUT=1 VARIANTS=compile bash "$here/scripts/side_by_side.sh" "$peer" "$out/cifar_b${cifar_batch}_bf16.jsonl" \
    "$peer_python"
done
echo "all done after $(( $(date +%s) - start )) s" | tee -a "$out/env.txt"
