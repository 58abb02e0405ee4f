"""MobileNetV1 0.5 from scratch on the tf_flowers photos (5 classes): 160 px with TrivialAugment, 250 epochs.

    # the image-folder copy (train/ 2,934 and val/ 736 photos):
    mobilejax train --config configs/flowers.py:folder=../shared/data/flowers --workdir runs/flowers
    # tfds (downloads tf_flowers, which has only `train`: 80/20 split by slicing):
    mobilejax train --config configs/flowers.py --workdir runs/flowers

Recipe (from scratch; published from-scratch results on these photos are 88.7% for MobileNetV2 0.35 and 92.1% for
MobileNetV1 0.5, both at 224 px, STM32 model zoo): MobileNetV1 alpha 0.5 trained at 160 px (random-resized-crop with
at least 25% of the photo, then one TrivialAugment operation per photo, `data.auto_augment="trivial"`, then flip),
evaluated at 180 px (resize 206 + centre crop 180, `data.eval_image_size`: the FixRes size for such crops, 160 x
1.286 / 1.143; six test-time views as below), 250 epochs, AdamW 2e-3 with 5 warm-up epochs and cosine decay, weight
decay 0.05 (decoupled, not on BN/bias), label smoothing 0.1, dropout 0.2, batch 64, evaluation every 25 epochs.

Measured (jax 0.10.2, 2026-12-05, a 2-core AMD EPYC VM with AVX-512, from scratch in one session; the first ~35
minutes beside a niced test suite), the image-folder command above (run as the same settings given by flags:
`--config.data.image_size=160 --config.data.eval_image_size=180 --config.data.auto_augment=trivial
--config.num_epochs=250 --config.eval_every_epochs=25` on the previous default): **90.2% final and best** (664 of 736;
after epochs 25/50/.../250: 73.9/77.6/78.3/84.8/86.8/88.3/87.5/89.0/89.4/90.2%), 8,297 s (2.3 h) of training, 88 img/s
on average (~95 img/s once alone on the CPU; the photos' decode, crop and TrivialAugment in tf.data share the two
cores with the train step). Above the 90% target by 0.2 points (662 photos would be 89.9%). A second seed
(`--config.seed=1`, 2026-12-05, over two sessions with a 30-minute pause, ~0.7 s per step alone): **90.8%** final and
best (668 of 736; 71.9/77.7/81.9/85.5/85.6/87.5/89.3/89.3/89.8/90.8%), so **90.5 +- 0.4% over two seeds** (mean +- std,
n = 2; both runs above 90%). On the final code (2026-12-06, after the BatchNorm-backward and depthwise-gradient changes
of 2026-12-05/06; jax 0.10.2, a 2-core AMD EPYC VM with AVX-512, CPU family 26, alone on the CPU; the image-folder
command above with `--config.seed=2`, then `--config.seed=0` again): **92.1%** (seed 2; 678 of 736;
72.7/82.5/80.0/84.2/87.5/89.0/88.3/90.8/91.3/92.1%) and **90.1%** (seed 0; 663 of 736, one photo above the line;
71.7/76.4/82.1/83.7/87.5/88.0/88.7/89.8/89.1/90.1%), final and best both times, 3,101 and 3,126 s (52 min) of
training at 239 and 236 img/s: 91.1 +- 1.4% on the final code (n = 2), **90.8 +- 0.9%** over all four runs (n = 4),
every run at or above 90% (seed 0 gave 90.2% before and 90.1% after the code changes: the same recipe, other
floating-point sums). Seed 0 against the previous best (the 160 px run below, same size, schedule and views,
with rotation and MixUp/CutMix instead): +2.0 points at the end, ahead at every evaluation from epoch 100 (84.8 vs
83.3%).

History (all from scratch on `val/`; the default before 2026-12-05 was 224 px, 150 epochs, no TrivialAugment,
evaluation every 10 epochs, i.e. today's file with `--config.data.image_size=224 --config.data.eval_image_size=0
--config.data.auto_augment=none --config.num_epochs=150 --config.eval_every_epochs=10`, called PREVIOUS below).

PREVIOUS (224 px, 150 epochs; jax 0.10.2, 2026-11-24/25, the image-folder command, run across two sessions and resumed
from its checkpoint, one test view then): **86.3% validation accuracy** (val/, 736 photos; after epochs 10/20/.../150:
66.7/74.2/75.8/71.9/80.4/.../84.4/83.7/.../85.7/86.1/86.3%), 61 img/s, 8,842 s (2.5 h) of training wall time, partly
on a machine shared with test suites. **Short of the 90% target**: the training accuracy reaches 98%, so the gap is
overfitting on 2,934 photos. MixUp/CutMix measured on 2026-12-02 (jax 0.10.2, 2-core AVX-512 VM, from scratch in one
session, a few minutes of it beside short benchmarks): PREVIOUS plus `--config.data.mixup_alpha=0.2
--config.data.cutmix_alpha=1.0` -> **86.5% final, 86.7% best** (after epochs 10/20/.../150: 62.1/66.7/75.4/68.6/77.3/
80.7/81.2/82.7/85.7/83.8/86.7/84.6/86.1/86.5/86.5%), 50 img/s, 8,706 s (2.4 h). Behind the plain recipe up to epoch
50, level with it from epoch 90 on, and no better at the end (+0.2 points, one run each): not the lever that closes
the gap to 90% at this model size and schedule.

Test-time views (this file's evaluation since 2026-12-02: `eval_flip=True`, `eval_shift=16`, i.e. the photo and its
mirror image, and both moved by 16 pixels down-right and up-left, as in configs/cifar10_fast.py). The MixUp/CutMix run's
final checkpoint (trained before this default, so its saved config has one view), `mobilejax eval --workdir RUN
--checkpoint latest` with the overrides in brackets (2026-12-02, jax 0.10.2): **86.5%** one view (none), **87.6%**
flip views (`--config.eval_flip=True`), **88.0%** six views (`--config.eval_flip=True --config.eval_shift=16`, this
file's default now; ~30 s for the 736 photos against ~18 s for one view); also tried on the same checkpoint: shift
32 87.5%, no center crop 87.2%, six views at 256 px 88.5% and at 288 px 87.9%. These views were chosen on `val/`
itself (there is no second held-out split), so the best of them is an optimistic estimate; the six views at 224 px
are the default because they are the CIFAR recipe's rule, not the best number. **Still short of 90%** (88.0%).

Nor does a longer schedule at a lower training size with rotations (2026-12-03, jax 0.10.2, the 2-core AVX-512 VM,
resumed once from its checkpoint, bit-exact; a niced test suite shared the CPU for 35 minutes): 250 epochs at 160 px
(~1.96x fewer pixels per image than 224, so 250 epochs cost what ~130 do at 224), MixUp/CutMix as above, each photo
rotated by a uniform angle in +-30 degrees (the STM32 zoo's 92.1% recipe trains 1,000 epochs with rotation, shear, zoom
and colour augmentation), evaluated with the six views at 180 px (`data.eval_image_size`; the FixRes size for
random-resized crops of >= 25% and a 0.875 centre crop, 160 x 1.286 / 1.143, fixed before the run):

    mobilejax train --config configs/flowers.py:folder=../shared/data/flowers --config.data.image_size=160 \
      --config.data.eval_image_size=180 --config.data.auto_augment=none --config.data.random_rotation=30.0 \
      --config.data.mixup_alpha=0.2 --config.data.cutmix_alpha=1.0 --config.num_epochs=250 \
      --config.eval_every_epochs=25 --workdir runs/flowers_160

**88.2% final, 88.6% best** (after epochs 25/50/.../250: 64.5/75.0/80.2/83.3/84.4/87.0/86.7/88.6/88.3/88.2%),
8,125 s (2.3 h) of training, 91 img/s. The same checkpoint evaluated at 160 px (`mobilejax eval --workdir RUN
--checkpoint latest --config.data.eval_image_size=160`) also gives 88.2%: the larger test size buys nothing here.
Level with the 224 px MixUp run's 88.0% in about the same time: rotation and 100 more epochs at a smaller size do
not close the gap either.

Nor do more epochs at a smaller size still (2026-12-04, jax 0.10.2, a 2-core AMD EPYC VM with AVX-512, alone on the
CPU, in one session): the 160 px run's augmentation at 128 px (~0.64x its pixels per image) for 300 epochs, evaluated
with the six views at 144 px (128 x 1.286 / 1.143, fixed before the run):

    mobilejax train --config configs/flowers.py:folder=../shared/data/flowers --config.data.image_size=128 \
      --config.data.eval_image_size=144 --config.data.auto_augment=none --config.data.random_rotation=30.0 \
      --config.data.mixup_alpha=0.2 --config.data.cutmix_alpha=1.0 --config.num_epochs=300 \
      --config.eval_every_epochs=25 --workdir runs/flowers_128

**86.7% final and best** (after epochs 25/50/.../300: 66.3/74.6/75.8/81.2/81.7/84.8/85.9/85.1/85.7/86.7/86.7/
86.7%), 8,398 s (2.3 h) of training, 105 img/s (the train step alone runs at 151 img/s here, `mobilejax bench
mobilenet_v1 --alpha 0.5 --resolution 128 --batch 64 --num-classes 5`: the photos' decode, crop and rotation in
tf.data share the two cores). Behind the 160 px run at every common evaluation from epoch 75 on (e.g. 81.2 against
83.3% at epoch 100, 86.7 against 88.2% at 250) and 1.5 points below it at the end: "more epochs at a smaller size"
stops paying here.
What closed the gap: TrivialAugment (the head of this docstring). (The first recipe, MobileNetV2 0.5 at 96 px for 40
epochs, reached 73.2%.)
"""
from mobilejax.config import apply_args, get_config as default_config, model_config, parse_arg


def get_config(arg=None):
    args = parse_arg(arg)
    config = default_config()
    config.model = model_config(str(args.pop("model", "mobilenet_v1")), alpha=0.5, dropout=0.2)
    folder = args.pop("folder", None)
    if folder:
        config.data.dataset = f"image_folder:{folder}"
        config.data.train_split = "train"
        config.data.eval_split = "val"
    else:
        config.data.dataset = "tf_flowers"
        config.data.train_split = "train[:80%]"
        config.data.eval_split = "train[80%:]"
    config.data.image_size = 160
    config.data.eval_image_size = 180  # FixRes: 160 x 1.286 / 1.143 for random-resized crops >= 25% (docstring)
    config.data.train_augment = "random_resized_crop"
    config.data.min_crop_area = 0.25
    config.data.random_flip = True
    config.data.auto_augment = "trivial"
    config.data.eval_resize = "center_crop"
    config.eval_flip = True
    config.eval_shift = 16  # six views (docstring): +1.5 points on the MixUp run's checkpoint
    config.optim.optimizer = "adamw"
    config.optim.learning_rate = 2e-3
    config.optim.weight_decay = 0.05
    config.optim.warmup_epochs = 5.0
    config.optim.label_smoothing = 0.1
    config.batch_size = 64
    config.eval_batch_size = 128
    config.num_epochs = 250
    config.eval_every_epochs = 25
    config.checkpoint_every_steps = 460  # every 10 epochs (45 steps each), so a stop loses little
    return apply_args(config, args)
