#!/usr/bin/env bash
# Does the input pipeline keep up with the train step? Alternates (A B A B ...) `mobilejax bench` (the jit-compiled
# train step on synthetic batches) and a short `mobilejax train` of the same model and shape on real JPEGs (tf.data
# decode + augment on the same cores), one JSON line per run appended to OUT_JSONL: the bench line, and for the train
# run the img/s of every log window (compile excluded) and of the whole run.
#
# usage: [REPS=3] [STEPS=160] [WINDOW=20] [BENCH_STEPS=20] [BATCH=128] [MODEL=mobilenet_v2] [ALPHA=1.0] [RES=32]
#        [CONFIG=configs/cifar10.py:folder=../shared/data/cifar10] [OPTIONS="small_input=True"]
#        scripts/pipeline_vs_bench.sh OUT_JSONL
# BENCH_STEPS: the bench's timed steps (its img/s is their median); as many as the train run's steps sample the
# machine's speed over a comparable stretch of time. The defaults are MobileNetV2 1.0 with the small-input stem at
# 32 px, batch 128 (issue 11's CIFAR shape).
# Summary: python scripts/pipeline_vs_bench.py OUT_JSONL
set -euo pipefail
out=$1
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
mj=${MOBILEJAX:-$here/.venv/bin/mobilejax}
py=${PYTHON:-$here/.venv/bin/python}
config=${CONFIG:-configs/cifar10.py:folder=../shared/data/cifar10}
batch=${BATCH:-128}; res=${RES:-32}; model=${MODEL:-mobilenet_v2}; alpha=${ALPHA:-1.0}
opts=""; knobs=""
for o in ${OPTIONS-small_input=True}; do opts="$opts --option $o"; knobs="$knobs --config.model.$o"; done
wd=$(mktemp -d)
trap 'rm -rf "$wd"' EXIT
for rep in $(seq "${REPS:-3}"); do
  # shellcheck disable=SC2086
  line=$("$mj" bench "$model" --alpha "$alpha" --resolution "$res" --batch "$batch" --mode train --num-classes 10 \
    --steps "${BENCH_STEPS:-20}" $opts \
    --json 2>"$wd/bench.err" | tail -1) || { echo "bench failed: $(tail -1 "$wd/bench.err")" >&2; exit 1; }
  echo "$line" | sed "s/}\$/, \"kind\": \"bench\", \"rep\": $rep}/" >> "$out"
  rm -rf "$wd/run"
  # shellcheck disable=SC2086
  "$mj" train --config="$config" --config.model.name="$model" --config.model.alpha="$alpha" $knobs --config.batch_size="$batch" \
    --config.num_train_steps="${STEPS:-160}" --config.log_every_steps="${WINDOW:-20}" --config.eval_every_epochs=1000 \
    --config.checkpoint_every_steps=1000000 --config.progress=False --workdir="$wd/run" > "$wd/train.log" 2>&1 \
    || { echo "train failed: $(tail -1 "$wd/train.log")" >&2; exit 1; }
  "$py" - "$wd/run" "$rep" "$batch" >> "$out" <<'PY'
import json, os, sys
run, rep, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
windows = [round(m["img_per_s"], 2) for m in map(json.loads, open(os.path.join(run, "metrics.jsonl")))
           if "img_per_s" in m]
results = json.load(open(os.path.join(run, "results.json")))
print(json.dumps({"kind": "train", "rep": rep, "batch": batch, "window_img_per_s": windows,
                  "img_per_s": results.get("img_per_s"), "compile_s": results.get("compile_s")}))
PY
done
