#!/usr/bin/env bash
# Issue 11's GPU line on the next lent machine, in one call: the kernel-level profile of the bf16 train step at batch
# 256, then scripts/bn_levers.py's BatchNorm rewrites timed against the library and torch.compile AMP, alternated.
#
# usage: [MODEL=mobilenet_v2] [REPS=3] [STEPS=20] [BUDGET_S=420] [PYTHON=python3] [BATCH=256] [RES=224] \
#        [DEVICE=cuda] \
#        scripts/gpu_levers.sh PEER_PY OUT_DIR [PEER_PYTHON]
# Writes OUT_DIR/env.txt, warm.log, profile.txt, profile/{perfetto_trace.json.gz,train_step.hlo.txt,run.json} and
# levers.jsonl (one line per run: ours with "levers": none | onepass,bnact | onepass | bnact, then the peer's line).
# Summarise: python scripts/side_by_side_table.py OUT_DIR/levers.jsonl; python scripts/op_profile.py --load
# OUT_DIR/profile --by-layer. The static picture (bytes per pass without a GPU, scripts/gpu_aot.py) is in
# docs/benchmarks.md.
set -u
peer=$1; out=$2; peer_python=${3:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$( [ -x "$here/.venv/bin/python" ] && echo "$here/.venv/bin/python" || echo python3)}
model=${MODEL:-mobilenet_v2}; steps=${STEPS:-20}; batch=${BATCH:-256}; res=${RES:-224}; device=${DEVICE:-cuda}
shape="--resolution $res --batch $batch"
export MOBILEJAX_CACHE_DIR=${MOBILEJAX_CACHE_DIR:-/tmp/mobilejax-cache}
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # the warm-up processes share the GPU
mkdir -p "$out"; : > "$out/warm.log"; start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
{ date -u; nvidia-smi -L 2>/dev/null; nproc
  $py -c 'import jax, flax, optax; print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__, jax.devices())'
  $peer_python -c 'import torch; print("torch", torch.__version__)'; } > "$out/env.txt" 2>&1

# 1. compile every program once (XLA's persistent cache, inductor's own); these runs' timings are thrown away.
# The library's program first and alone: XLA autotunes its GEMMs and convolutions on a quiet GPU and keeps the
# choices (per-fusion autotune cache); the rewrites leave those ops alone and reuse the choices, compiling in parallel
flags="${XLA_FLAGS:-} --xla_gpu_per_fusion_autotune_cache_dir=$MOBILEJAX_CACHE_DIR/autotune"
if XLA_FLAGS="$flags" $py -c 'import jax; jax.devices()' > /dev/null 2>&1; then export XLA_FLAGS="$flags"
else echo "this XLA lacks --xla_gpu_per_fusion_autotune_cache_dir: the rewrites autotune on their own" | tee -a "$out/env.txt"; fi
$peer_python "$peer" "$model" $shape --device "$device" --amp --compile --steps 1 >> "$out/warm.log" 2>&1 &
$py "$here/scripts/bn_levers.py" none "$model" $shape --dtype bfloat16 --steps 1 >> "$out/warm.log" 2>&1
for lv in onepass bnact onepass,bnact; do
  $py "$here/scripts/bn_levers.py" "$lv" "$model" $shape --dtype bfloat16 --steps 1 >> "$out/warm.log" 2>&1 &
done
wait
echo "caches warm after $(elapsed) s" | tee -a "$out/env.txt"

# 2. the profile of the library's step (kernel times joined with the HLO), alone on the GPU
$py "$here/scripts/op_profile.py" "$model" $shape --dtype bfloat16 --steps 5 --save "$out/profile" --top 60 \
  --by-layer > "$out/profile.txt" 2>&1
echo "profile done after $(elapsed) s" | tee -a "$out/env.txt"

# 3. alternated: ours, ours with both rewrites, each rewrite alone, torch.compile AMP; one rep at a time in budget
for rep in $(seq "${REPS:-3}"); do
  [ "$(elapsed)" -lt "${BUDGET_S:-420}" ] || { echo "budget spent after $((rep - 1)) reps" | tee -a "$out/env.txt"; break; }
  for lv in none onepass,bnact onepass bnact; do
    $py "$here/scripts/bn_levers.py" "$lv" "$model" $shape --dtype bfloat16 --steps "$steps" 2>/dev/null \
      | sed "s/}\$/, \"rep\": $rep}/" >> "$out/levers.jsonl" || echo "{\"error\": \"ours $lv\", \"rep\": $rep}" >> "$out/levers.jsonl"
  done
  $peer_python "$peer" "$model" $shape --device "$device" --amp --compile --steps "$steps" 2>/dev/null \
    | sed "s/}\$/, \"dtype\": \"bfloat16\", \"rep\": $rep}/" >> "$out/levers.jsonl" \
    || echo "{\"error\": \"peer\", \"rep\": $rep}" >> "$out/levers.jsonl"
done
echo "all done after $(elapsed) s" | tee -a "$out/env.txt"
