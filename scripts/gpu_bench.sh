#!/usr/bin/env bash
# Throughput side by side with PyTorch eager (peer_torch.py), alternating runs (A B A B), one JSON line each.
# usage: BATCH=32 DTYPES="bfloat16" REPS=2 MODELS="mobilenet_v2 ..." scripts/gpu_bench.sh PEER_TORCH_PY OUT_JSONL
set -u
peer=$1; out=$2
for m in ${MODELS:-mobilenet_v2 mobilenet_v3_large shufflenet_v2}; do
  for rep in $(seq "${REPS:-2}"); do
    for dt in ${DTYPES:-bfloat16}; do
      amp=""; [ "$dt" = bfloat16 ] && amp="--amp"
      python3 -m mobilejax.cli bench "$m" --resolution 224 --batch "${BATCH:-32}" --mode train --dtype "$dt" \
        --steps "${STEPS:-20}" --json >> "$out" || echo "{\"error\": \"mobilejax $m $dt\"}" >> "$out"
      python3 "$peer" "$m" --resolution 224 --batch "${BATCH:-32}" --mode train --device cuda $amp \
        --steps "${STEPS:-20}" >> "$out" || echo "{\"error\": \"torch $m $dt\"}" >> "$out"
    done
  done
done
