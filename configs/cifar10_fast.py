"""A fast CIFAR-10 recipe for a 2-core CPU: ShuffleNetV2 1.0 with the small-input stem, batch 128, 34 epochs with
progressive resizing (24 px growing to 32 px).

    mobilejax train --config configs/cifar10_fast.py:folder=../shared/data/cifar10 --workdir runs/cifar10_fast
    # tfds (downloads cifar10 on a machine with internet; trains on train[:90%], validates on train[90%:]):
    mobilejax train --config configs/cifar10_fast.py --workdir runs/cifar10_fast
    # the accuracy of a trained checkpoint with other test-time views (flip only: --config.eval_shift=0):
    mobilejax eval --workdir runs/cifar10_fast --checkpoint latest

Recipe (short-schedule tricks from the fast-CIFAR literature that apply to a BatchNorm mobile network): progressive
resizing (`data.progressive_size=24`, `data.progressive_epochs=(12, 26)`: epochs 0-18 train at 24 px, 19-25 at 28 px,
26-33 at 32 px, the batch resized on the device; a 24 px step trains ~2x as many images/s as a 32 px one here, so 34
epochs cost about what 23 full-size ones do), a small model that does many epochs in the budget (ShuffleNetV2 1.0,
small-input stem, 45.0M MACs, 1.26M parameters; the default since 2026-12-03, MobileNetV3-Small 1.0 before, see
below), batch 128 (MobileNetV3-Small's train step runs ~10% more images/s at batch 128 than at 256 on these cores:
~290-310 against ~260-270 img/s in `mobilejax bench`, and the schedule gets twice the steps), SGD + Nesterov with a
2-epoch linear warm-up to 0.2 then a linear decay to 0, weight decay 5e-4 (not on BN/bias), label smoothing 0.1,
pad-4-and-crop + flip, no dropout, and test-time augmentation at evaluation over six views: the logits of the image
and its mirror image (half the weight) and of two copies moved by 2 pixels down-right and up-left (reflected borders),
each with its mirror (a quarter each; `eval_flip`, `eval_shift=2`). Trains on `train[:90%]` (45,000 images) and
validates on `train[90%:]` (5,000, stratified by class for the image-folder copy).

Measured, this default (2026-12-04, jax 0.10.2, 2-core AMD EPYC VMs with AVX-512, alone on the CPU, tf.data, the
image-folder command above, validation on `train[90%:]`, six views): **90.20%** (seed 0), **89.94%** (seed 1,
`--config.seed=1`) and **90.30%** (seed 2, `--config.seed=2`), mean **90.15 +- 0.19%** (n = 3), in **94.1, 105.9 and
79.4 min** of training (5,646 / 6,355 / 4,761 s). Seeds 0 and 1 ran with glibc's malloc, seed 2 with the oneTBB
allocator that the `mobilejax` command preloads since then (mobilejax/runtime.py; docs/profile.md): the same numbers
bit for bit (its losses at steps 80-120 equal those of a glibc start of seed 2), only faster. Seed 1 and seed 2 ran
on the same medium VM, a few hours apart (`mobilejax bench shufflenet_v2 --resolution 32 --batch 128 --option
small_input=True --num-classes 10`: 234 / 235 img/s before seed 1, 197 / 221 after; the fast VM gives 251-309): the
medians of their logged windows were 331 -> 431 img/s at 24 px, 228 -> 320 at 28 px and 174 -> 242 at 32 px
(glibc -> tbb), 1.35x less training time over the run. Seed 0 ran on another medium VM (the bench: 191-237 img/s that
day): 405-425 img/s at 24 px, 243-264 at 28 px, 180-198 at 32 px. Curves after epochs 7/14/21/28/34:
63.2/74.4/76.4/86.9/90.20%, 71.0/73.0/78.9/85.8/89.94% and 70.0/74.9/79.5/86.7/90.30% (the mid-run evaluations at 32
px of a network trained at 24-28 px read low, as FixRes describes; they catch up once it trains at 32 px). Against the
previous default's three seeds (89.71 +- 0.50%, below): +0.44 points, inside its spread, in less time. **Within the
targets then**: seed 2, the one run of that day's code with oneTBB's malloc, reached 90.30% in 79.4 min on a medium VM; the
two glibc runs took 94 and 106 min (~70 and ~78 min at seed 2's 1.35x: estimates, not measured), and the three-seed
mean is 90.15% with one seed (89.94%) just below 90%.
Re-measured on the final code (2026-12-06, the native depthwise kernel gradient, whose sums run in another order than
the runs above, so every run is a new sample): a 2-core AMD EPYC VM with AVX-512 (CPU family 26; the medians of its 32 px
training windows 531-555 img/s, against 174-242 for the runs above), alone on the CPU apart from the test suite beside seed 2 for its
first ~10 minutes, the image-folder command above with `--config.seed=S`:
**89.72%** (seed 0), **90.12%** (seed 1) and **90.42%** (seed 2), mean **90.09 +- 0.35%** (n = 3),
in **36.5, 36.7 and 40.4 min** of training (2188 / 2203 / 2426 s; `malloc`: tbb). Curves after epochs
7/14/21/28/34: 68.86/74.60/78.88/85.76/89.72, 70.20/76.02/78.58/86.22/90.12 and 71.82/70.82/77.48/86.84/90.42%.
With the three runs above: 90.12 +- 0.25% (n = 6). On the 90% line rather than clear of it: a run of this recipe lands within
about half a point either side of 90%.
The previous default (the same without progressive resizing, 28 epochs at 32 px; `--config.num_epochs=28
--config.data.progressive_size=0`): measured (label smoothing 0.1 since 2026-12-04; jax 0.10.2, 2-core AMD EPYC VMs
with AVX-512, alone on the CPU, the image-folder command above, validation on `train[90%:]`, six views): **90.08%**
(seed 0), **89.90%** (seed 1, `--config.seed=1`) and **89.14%** (seed 2, `--config.seed=2`), mean **89.71 +- 0.50%**
(n = 3), in **136.7, 120.2 and 97.9 min** of training (8,203 / 7,210 / 5,873 s, 157 / 179 / 221 img/s); curves after
epochs 7/14/21/28: 72.4/81.0/85.9/90.08%, 77.7/81.1/85.7/89.90% and 76.2/80.4/84.7/89.14%. Seeds 0 and 1 ran on the
slow VMs described below; seed 2 (2026-12-04) on a medium one (`mobilejax bench shufflenet_v2 --resolution 32 --batch
128 --option small_input=True --num-classes 10`: 213 img/s; the fast VM gives 251-309). Against label smoothing 0.2's
three seeds below (89.63 +- 0.08%): +0.07 points, Welch's 95% interval [-1.12, +1.27] (df 2.1) contains 0, not
resolved; the six runs together: 89.67 +- 0.32%. **Short of both targets**: the mean is ~0.3 points below 90% (one run
of three is above), and 28 epochs take 98 min on the medium VM and 120-137 min on the slow ones (~75-80 min estimated
on the fast VM from its measured speed, never measured there). Every run below also predates progressive resizing: to
repeat one, add `--config.data.progressive_size=0` to its command (and `--config.num_epochs=28` where it names none).

Label smoothing 0.2 (the default until 2026-12-04), measured with ShuffleNetV2 1.0 (jax 0.10.2, 2026-12-03, 2-core
AMD EPYC VMs with AVX-512, alone on the CPU, the image-folder command above, validation on `train[90%:]`, six
views), three seeds of the default recipe: **89.62%**
(seed 0), **89.72%** (seed 1, `--config.seed=1`) and **89.56%** (seed 2, `--config.seed=2`), mean **89.63 +- 0.08%**
(mean +- standard deviation, n = 3), in **137.7, 129.9 and 140.3 min** of training on VMs ~0.6x as fast as the usual
one (8,260 / 7,795 / 8,420 s, 157 / 166 / 153 img/s, `mobilejax bench shufflenet_v2 --resolution 32 --batch 128
--option small_input=True --num-classes 10`: 176-209 img/s there). On the usual VM (277 img/s in training) the
24-epoch run below took 66.8 min, so the 28 epochs take ~78 min there: an estimate from the measured speed, not a
measured 28-epoch run. Curves after epochs 7/14/21/28: 74.4/81.6/85.1/89.62%, 77.8/80.6/84.9/89.72% and
77.7/81.1/85.9/89.56%. **Short of the 90%-in-90-minutes target** by ~0.4 points, and over 90 minutes on the slow
VMs. Against MobileNetV3-Small 1.0's three seeds (89.05 +- 0.47%, below) the difference of means is +0.58 points,
Welch's 95% interval [-0.54, +1.70] (df 2.1) contains 0: not resolved; the switch follows the better mean (and a
spread ~6x smaller), at about the same time per run. One run with label smoothing 0.1 reached 90.08% (near the end).

The previous default, MobileNetV3-Small 1.0 (17.5M MACs), measured on the 2-core CPU (AMD EPYC, jax 0.10.2,
2026-11-30, quiet machine), with the image-folder command above plus `,model=mobilenet_v3_small` in the config
argument (every run below that names no model used MobileNetV3-Small 1.0: add that argument to repeat it):
**89.58% validation accuracy** (`train[90%:]`, 5,000 images, six views; 89.28% with flip views only, `mobilejax eval
--checkpoint latest --config.eval_shift=0`) in **76.2 min** of training wall time (4,573 s including the four
six-view evaluations, 10 s compile, 283 img/s on average); curve after epochs 7/14/21/28: 76.3/79.2/84.2/89.6%.
Short of the 90%-in-90-minutes target by ~0.4 points (by ~1 point for the mean of three seeds, 89.05%, below).
(Measured as `--config.batch_size=128 --config.optim.learning_rate=0.2
--config.optim.label_smoothing=0.2 --config.num_epochs=28 --config.eval_every_epochs=7 --config.progress=False` over
the previous defaults, which are this file's values now.)

The default before that, batch 256 with peak learning rate 0.3 and label smoothing 0.1 for 25 epochs (evaluated
every 5), reached **89.18%** six views / 88.56% flip views in **76.8 min** (4,607 s with five flip-only
evaluations; the six views evaluated afterwards; 247 img/s; curve after epochs 5/10/15/20/25, flip views:
74.9/79.5/82.3/85.8/88.6%); the batch-128 recipe is +0.4 points (six views) and +0.7 (flip views) at the same
time. Runs of that batch-256 recipe:

Longer does not help inside the budget: 28 epochs (`--config.num_epochs=28 --config.eval_every_epochs=7`, same day, a
slower sitting at 233 img/s, the four evaluations with six views) took **91.7 min** (5,500 s, over the budget) for
89.04% (six views) and 88.56% (flip views only), the same as 25 epochs; curve after epochs 7/14/21/28:
76.8/80.2/84.6/89.0%.

Nor do 30 epochs of this recipe (`--config.num_epochs=30 --config.eval_every_epochs=10`, 2026-12-01, quiet machine,
tf.data, six views): **89.20%** in **85.5 min** (5,130 s, 269 img/s); curve after epochs 10/20/30: 78.7/82.4/89.2%.
Below the 28-epoch run's 89.58%, inside the run-to-run spread of about half a point; not a gain.

Nor does an EMA of the weights (`--config.optim.ema_decay=0.999`, evaluated with the EMA weights and EMA BatchNorm
statistics; 2026-12-01, another 2-core AMD EPYC VM, tf.data, six views; two one-minute compiles ran beside it in
its first minutes): **88.78%** in **83.4 min** (5,003 s, 260 img/s); curve after epochs 7/14/21/28:
10.5/70.3/85.3/88.8%. The average lags at the high learning rates of the first half (at epoch 7 it is at chance,
likely because averaged weights no longer match the averaged BatchNorm statistics; not verified), leads by a point at
epoch 21 (85.3 vs 84.2%), and ends below the plain weights of the 28-epoch run (89.58%): with the learning rate decayed
linearly to zero the last weights are already an average, and a 1,000-step EMA still carries weights from higher
learning rates.

Nor does batch 64 (`--config.batch_size=64 --config.optim.learning_rate=0.1`, twice the updates in the same 28
epochs; its step runs as fast per image as batch 128 here: `mobilejax bench mobilenet_v3_small --resolution 32
--batch B --option small_input=True --steps 30`, alternated, 2 pairs: 269.7 / 271.6 img/s at batch 64, 261.9 / 252.5
at 128). 2026-12-01, the EMA run's VM, quiet machine, tf.data, six views: **89.16%** in **79.2 min** (4,749 s, 274
img/s); curve after epochs 7/14/21/28: 77.1/80.7/85.0/89.2%. Ahead of batch 128 at epochs 7, 14 and 21
(76.3/79.2/84.2%) and 0.4 points below its 89.58% at the end, inside the run-to-run spread: not a gain.

Nor does a wider model in the same time: MobileNetV3-Small 1.25 (28.5M MACs, 175 img/s) for 18 epochs
(`--config.model.alpha=1.25 --config.num_epochs=18 --config.eval_every_epochs=6`, 2026-11-30, quiet machine, six
views at every evaluation) reached **89.20%** (six views; 89.06% flip views only) in **78.3 min** (4,695 s); curve
after epochs 6/12/18: 76.5/82.5/89.2%. Parity with that recipe's 25-epoch run (89.18%).

Nor do more test-time views: evaluated on the two batch-256 checkpoints above (25 and 28 epochs), fifty views (the
image and its mirror moved by every shift of 0-2 pixels in each direction, equal weights) give 89.32% / 89.22%
against 89.18% / 89.04% for the six views: +0.1-0.2 points for 8x the evaluation cost, so the six views stay.

History on this CPU (the batch-256 recipe otherwise): MobileNetV2 0.5 (28.0M MACs), an earlier default, reached 87.8%
in 25 epochs / 77.3 min and 88.3% in 30 epochs / 91.3 min (88.8% with eval_shift=2) on a machine whose step was ~1.75x
faster than the one above (`--config.model.name=mobilenet_v2 --config.model.alpha=0.5`); MobileNetV3-Small 1.0 learns
faster per epoch (74.9 vs 71.4% after 5 epochs, 85.8 vs 81.7% after 20) and trains ~1.5x faster per image here.
XLA:CPU flags, bfloat16 (3x slower on XLA:CPU) and splitting the two cores into two data-parallel devices (10% slower)
do not make the step faster (docs/benchmarks.md).

Nor does airbench's alternating flip (`--config.data.alternate_flip=True`: each image mirrored in every other epoch,
so any two consecutive epochs show it both ways; free per step). 2026-12-02, a 2-core AMD EPYC VM with AVX-512
(`mobilejax bench mobilenet_v3_small --resolution 32 --batch 128 --option small_input=True --num-classes 10`: 336
img/s before the run), tf.data, six views, one run from scratch (an earlier start on another VM was lost with that
VM; two short profiling jobs ran beside it in its first ten minutes): **89.10%** in **72.8 min** (4,368 s, 297
img/s, 18 s compile); curve after epochs 7/14/21/28: 75.2/79.5/84.3/89.1%. Within about a point of the 89.58% run at
every evaluation (76.3/79.2/84.2/89.6%) and 0.5 points below it at the end, inside the run-to-run spread: not a gain.

Nor does the wider model on this batch-128 recipe for longer: MobileNetV3-Small 1.25 for 24 epochs
(`--config.model.alpha=1.25 --config.num_epochs=24 --config.eval_every_epochs=8`, 2026-12-02, the alternating-flip
run's VM, alone on the CPU, tf.data, six views; a first start at 27 epochs was stopped after 20 minutes because the
sitting's ~230 img/s would have taken it past 90 minutes): **89.46%** in **79.8 min** (4,789 s, 231 img/s, 6 s
compile); curve after epochs 8/16/24: 79.7/82.7/89.5%. Ahead of MobileNetV3-Small 1.0 early (79.7% at epoch 8 against
~76% at epoch 7) and level with its 89.58% at the end, inside the run-to-run spread: not a gain.

Nor does a deeper model: MobileNetV3-Large 0.5 with the small-input stem (21.0M MACs, 1.42M parameters; its
`mobilejax bench` step ~0.75x MobileNetV3-Small 1.0's), for the 22 epochs that fit
(`configs/cifar10_fast.py:folder=../shared/data/cifar10,model=mobilenet_v3_large --config.model.alpha=0.5
--config.num_epochs=22 --config.eval_every_epochs=11`, 2026-12-02, the alternating-flip run's VM, alone on the CPU,
tf.data, six views): **88.52%** in **73.5 min** (4,412 s, 230 img/s, 14 s compile); curve after epochs 11/22:
79.4/88.5%. Level with the others at mid-run and a point below MobileNetV3-Small 1.0's 89.58% at the end.

The recipe's run-to-run spread, measured: the same command with `--config.seed=1` (2026-12-02, the alternating-flip
run's VM, alone on the CPU, tf.data, six views) reached **88.68%** in **63.4 min** (3,807 s, 340 img/s, 12 s
compile); curve after epochs 7/14/21/28: 76.4/81.0/84.8/88.7%. And `--config.seed=2` (2026-12-03, an AVX-512 2-core
AMD EPYC VM, alone on the CPU, tf.data, six views; stopped by a session's end at step 460 and resumed bit-exact from its
step-350 checkpoint in the next session): **88.90%** in **62.3 min** (3,741 s of training, 348 img/s, 12 s compile);
curve after epochs 7/14/21/28: 76.6/80.7/85.6/88.9%. Over seeds 0/1/2 the recipe gives **89.05 +- 0.47%** (mean +-
standard deviation, n = 3): the 89.58% is the upper end of a ~1-point spread, and every lever above lies inside it.

Nor does filling the budget on a faster VM: 36 epochs (`--config.num_epochs=36 --config.eval_every_epochs=12`,
2026-12-03, the alternating-flip run's VM, alone on the CPU, tf.data, six views; `mobilejax bench mobilenet_v3_small
--resolution 32 --batch 128 --option small_input=True --num-classes 10`: 361 img/s before it; the run stopped at its
first evaluation when the library was edited beside it and resumed from its step-4200 checkpoint, bit-exact by
design): **88.70%** in **75.3 min** (4,518 s of training, 354 img/s, 15 s compile); curve after epochs 12/24/36:
78.5/84.5/88.7%. Level with the 28-epoch seeds (89.58/88.68/88.90%): not a gain.

Nor, in one run, does ShuffleNetV2 1.0 with the small-input stem (45.0M MACs, 1.26M parameters; its
`mobilejax bench` step ~0.72x MobileNetV3-Small 1.0's on that VM, 251 / 309 against 403 / 373 img/s, alternated)
for 24 epochs (`configs/cifar10_fast.py:folder=../shared/data/cifar10,model=shufflenet_v2 --config.num_epochs=24
--config.eval_every_epochs=8`, 2026-12-03, the seed-2 run's VM, alone on the CPU, tf.data, six views): **89.46%** in
**66.8 min** (4,009 s, 277 img/s, 11 s compile); curve after epochs 8/16/24: 78.4/83.3/89.5%. Above the three-seed
mean of MobileNetV3-Small 1.0 (89.05%) by 0.4 points, one seed, inside its spread; 23 minutes of the budget are left
for ~4 more epochs, measured next.

ShuffleNetV2 1.0 for 28 epochs (`configs/cifar10_fast.py:folder=../shared/data/cifar10,model=shufflenet_v2
--config.num_epochs=28 --config.eval_every_epochs=7`, 2026-12-03, a slower 2-core AMD EPYC VM with AVX-512, alone on
the CPU, tf.data, six views, one run from scratch; the same `mobilejax bench` as above gave 176 / 180 img/s for
ShuffleNetV2 and 212 for MobileNetV3-Small there, ~0.6x the 24-epoch run's VM): **89.62%**, the best single run
then, by 0.04 points over MobileNetV3-Small 1.0's 89.58%. Seed 1 made ShuffleNetV2 the default and seed 2 followed
(the three seeds' accuracies, times and curves, and the comparison, are at the top of this docstring).

So nine levers on this recipe (28, 30 or 36 epochs, EMA, batch 64, a wider model twice, alternating flip, a deeper
model, ShuffleNetV2) land at 88.5-89.7%: the recipe sits ~0.3-1 point short of 90% on this CPU, and a lever worth
less than the spread of about half a point needs several seeds per arm to show.

Label smoothing 0.1 instead of 0.2 (`--config.optim.label_smoothing=0.1`, seed 0; 2026-12-04, the slow 2-core AMD
EPYC VM of seed 2 above, alone on the CPU, tf.data, six views): **90.08%** in **136.7 min** (8,203 s),
curve after epochs 7/14/21/28: 72.4/81.0/85.9/90.08%; +0.45 points over label smoothing 0.2's three-seed mean (89.63 +-
0.08%), the first run at >= 90%. Seed 1 (2026-12-04) reached 89.90%: the default since then (the docstring's head).
(Test-time shifts of 1, 3 or 4 pixels instead of 2 on the three default checkpoints:
within +-0.2 points, no consistent gain.)

Config arguments: model, alpha, res, epochs, batch, lr, folder=PATH, and any dotted key.
"""
import os
import sys

from mobilejax.config import apply_args, parse_arg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cifar10  # noqa: E402  (the data set-up: splits, 32 px, pad-and-crop + flip; this file changes the recipe)


def get_config(arg=None):
    args = parse_arg(arg)
    config = cifar10.get_config({"model": args.pop("model", "shufflenet_v2"), "folder": args.pop("folder", None)})
    config.model.alpha, config.model.dropout = 1.0, 0.0
    config.optim.nesterov = True
    config.optim.learning_rate = 0.2
    config.optim.schedule = "linear"
    config.optim.warmup_epochs = 2.0
    config.optim.weight_decay = 5e-4
    config.optim.label_smoothing = 0.1
    config.num_epochs = 34
    config.data.progressive_size = 24
    config.data.progressive_epochs = (12, 26)
    config.eval_every_epochs = 7
    config.eval_flip = True
    config.eval_shift = 2
    config.checkpoint_every_steps = 350
    return apply_args(config, args)
