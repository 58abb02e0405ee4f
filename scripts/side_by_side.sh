#!/usr/bin/env bash
# Throughput of `mobilejax bench` side by side with a peer (../shared/bench/peer_torch.py or peer_keras.py),
# alternating runs (ours, peer, ours, peer, ...), one JSON line per run appended to OUT_JSONL.
#
# usage: [DEVICE=cpu|cuda] [DTYPES=float32] [REPS=3] [STEPS=6] [BATCH=32] [RES=224] [MODELS="..."]
#        scripts/side_by_side.sh PEER_PY OUT_JSONL [PEER_PYTHON]
#   PEER_PYTHON: the interpreter that has the peer's framework (e.g. a venv with torch or keras); default python3.
# Summarise with: python scripts/side_by_side_table.py OUT_JSONL
set -u
peer=$1; out=$2; peer_python=${3:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)
ours=${MOBILEJAX:-$here/.venv/bin/mobilejax}; [ -x "$ours" ] || ours="python3 -m mobilejax.cli"
device=${DEVICE:-cpu}
for rep in $(seq "${REPS:-3}"); do
  for m in ${MODELS:-mobilenet_v2 mobilenet_v3_large shufflenet_v2}; do
    for dt in ${DTYPES:-float32}; do
      peer_args=""
      case "$peer" in *torch*) peer_args="--device $device"; [ "$dt" = bfloat16 ] && peer_args="$peer_args --amp";; esac
      load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "")
      $ours bench "$m" --resolution "${RES:-224}" --batch "${BATCH:-32}" --mode train --dtype "$dt" \
        --steps "${STEPS:-6}" --json | sed "s/}\$/, \"rep\": $rep, \"load\": \"$load\"}/" >> "$out" \
        || echo "{\"error\": \"mobilejax $m $dt\", \"rep\": $rep}" >> "$out"
      load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo "")
      $peer_python "$peer" "$m" --resolution "${RES:-224}" --batch "${BATCH:-32}" --mode train $peer_args \
        --steps "${STEPS:-6}" 2>/dev/null | sed "s/}\$/, \"dtype\": \"$dt\", \"rep\": $rep, \"load\": \"$load\"}/" >> "$out" \
        || echo "{\"error\": \"peer $m $dt\", \"rep\": $rep}" >> "$out"
    done
  done
done
