#!/usr/bin/env bash
# Issue 10's GPU line on a lent machine, in one call: configs/cifar10.py at full budget (MobileNetV2 1.0, small-input
# stem, 200 epochs, batch 512, bf16, the in-memory pipeline: the device has no TensorFlow), stopped cleanly before
# the call's time runs out, then evaluated with the six test-time views, and everything needed to judge it or to
# resume it in a later call written to OUT_DIR.
#
# usage: [TRAIN_S=480] [PYTHON=python3] [RUN=/tmp/run] [EPOCHS=200] \
#        scripts/gpu_cifar10_full.sh DATA_TAR OUT_DIR [--config.KEY=VALUE ...]
# DATA_TAR: a .tar.gz of the image folder `cifar10/train/<class>/*.jpg` (../shared/data/cifar10 packed: ~17 MB, so
# it travels with the checkout in an ignored folder named in `carry`). Extra arguments are config overrides added to
# the recipe below (e.g. --config.data.auto_augment=trivial). A run stopped by TRAIN_S is resumed by the same call
# with RESUME=OUT_DIR_OF_THAT_CALL/run.tar.gz carried back. Writes OUT_DIR/env.txt, train.log, eval.log, run/
# (config.json, run.json, metrics.jsonl, results.json when finished) and run.tar.gz (the workdir with its
# checkpoints, ~30 MB). Time: the H200 runs of 2026-12-01/04 took 364 s (without CutMix) and 535 s (with it, across a
# resume) of training wall time, compile and evaluations included; the two evaluations here take ~1 min, so give the
# device call timeout_s 590 and lower TRAIN_S (or resume in a second call) on a slower GPU.
set -u
data_tar=$1; out=$2; shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$( [ -x "$here/.venv/bin/python" ] && echo "$here/.venv/bin/python" || echo python3)}
run=${RUN:-/tmp/run}; data=/tmp/data
export MOBILEJAX_CACHE_DIR=${MOBILEJAX_CACHE_DIR:-/tmp/mobilejax-cache}
mkdir -p "$out/run" "$data"; start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
{ date -u; nvidia-smi -L 2>/dev/null; nproc
  $py -c 'import jax, flax, optax, numpy, PIL; print("jax", jax.__version__, "flax", flax.__version__, "optax",
optax.__version__, "numpy", numpy.__version__, "pillow", PIL.__version__, jax.devices())'; } > "$out/env.txt" 2>&1
tar xzf "$data_tar" -C "$data" || { echo "cannot unpack $data_tar" | tee -a "$out/env.txt"; exit 2; }
if [ -n "${RESUME:-}" ]; then mkdir -p "$run" && tar xzf "$RESUME" -C "$run"; fi

# the recipe of configs/cifar10.py's docstring (200 epochs with CutMix: 91.94% one view, 92.42% six views, H200)
recipe=(--config "configs/cifar10.py:folder=$data/cifar10" --config.data.pipeline=memory
        --config.num_epochs="${EPOCHS:-200}" --config.batch_size=512 --config.optim.learning_rate=0.4
        --config.optim.weight_decay=5e-4 --config.dtype=bfloat16 --config.eval_every_epochs=10
        --config.eval_batch_size=1000 --config.checkpoint_every_steps=2000 --config.data.cutmix_alpha=1.0
        --config.progress=False "$@")
cd "$here"
# SIGINT after TRAIN_S: the loop finishes its step, writes a checkpoint and exits 130 (a rerun resumes); --foreground:
# one delivery (without it timeout signals the process and its group)
timeout --foreground -s INT "${TRAIN_S:-480}" $py -m mobilejax.cli train "${recipe[@]}" --workdir "$run" \
  > "$out/train.log" 2>&1
echo "train exit $? after $(elapsed) s" | tee -a "$out/env.txt"
for views in "--config.eval_flip=False" "--config.eval_flip=True --config.eval_shift=2"; do
  echo "eval latest $views: $($py -m mobilejax.cli eval --workdir "$run" --checkpoint latest $views 2>&1 | tail -1)" \
    >> "$out/eval.log"
done
cp "$run"/{config.json,run.json,metrics.jsonl,results.json} "$out/run/" 2>/dev/null
tar czf "$out/run.tar.gz" -C "$run" . 2>/dev/null
echo "all done after $(elapsed) s" | tee -a "$out/env.txt"
