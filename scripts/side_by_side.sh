#!/usr/bin/env bash
# Throughput of `mobilejax bench` side by side with a peer (../shared/bench/peer_torch.py or peer_keras.py),
# alternating runs (ours, peer variant 1, peer variant 2, ours, ...), one JSON line per run appended to OUT_JSONL.
#
# usage: [DEVICE=cpu|cuda] [DTYPES=float32] [REPS=3] [STEPS=6] [BATCH=32] [RES=224] [MODELS="..."]
#        [VARIANTS="eager compile"] [SMALL_INPUT=1] [OURS_ARGS="..."]
#        scripts/side_by_side.sh PEER_PY OUT_JSONL [PEER_PYTHON]
#   PEER_PYTHON: the interpreter that has the peer's framework (e.g. a venv with torch or keras); default python3.
#   VARIANTS (peer_torch.py only): "eager" (default) and/or "compile" (torch.compile, inductor); each rep runs ours
#     once, then every variant once.
#   REP_FIRST: the number of the first rep (default 1), so that separate invocations append distinct pairs.
#   SMALL_INPUT=1: the CIFAR stem on both sides (`--option small_input=True` / `--small-input`; mobilenet_v2).
# Summarise with: python scripts/side_by_side_table.py OUT_JSONL
set -u
peer=$1; out=$2; peer_python=${3:-python3}
here=$(cd "$(dirname "$0")/.." && pwd)
ours=${MOBILEJAX:-$here/.venv/bin/mobilejax}; [ -x "$ours" ] || ours="python3 -m mobilejax.cli"
device=${DEVICE:-cpu}
ours_extra=${OURS_ARGS:-}; peer_extra=""
if [ "${SMALL_INPUT:-0}" = 1 ]; then ours_extra="$ours_extra --option small_input=True"; peer_extra="--small-input"; fi
load() { cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo ""; }
first=${REP_FIRST:-1}
for rep in $(seq "$first" $((first + ${REPS:-3} - 1))); do
  for m in ${MODELS:-mobilenet_v2 mobilenet_v3_large shufflenet_v2}; do
    for dt in ${DTYPES:-float32}; do
      l=$(load)
      # shellcheck disable=SC2086
      $ours bench "$m" --resolution "${RES:-224}" --batch "${BATCH:-32}" --mode train --dtype "$dt" \
        --steps "${STEPS:-6}" $ours_extra --json | sed "s/}\$/, \"rep\": $rep, \"load\": \"$l\"}/" >> "$out" \
        || echo "{\"error\": \"mobilejax $m $dt\", \"rep\": $rep}" >> "$out"
      for variant in ${VARIANTS:-eager}; do
        peer_args="$peer_extra"
        case "$peer" in *torch*)
          peer_args="$peer_args --device $device"; [ "$dt" = bfloat16 ] && peer_args="$peer_args --amp"
          [ "$variant" = compile ] && peer_args="$peer_args --compile";;
        esac
        l=$(load)
        # shellcheck disable=SC2086
        $peer_python "$peer" "$m" --resolution "${RES:-224}" --batch "${BATCH:-32}" --mode train $peer_args \
          --steps "${STEPS:-6}" 2>/dev/null | sed "s/}\$/, \"dtype\": \"$dt\", \"rep\": $rep, \"load\": \"$l\"}/" >> "$out" \
          || echo "{\"error\": \"peer $m $dt $variant\", \"rep\": $rep}" >> "$out"
      done
    done
  done
done
