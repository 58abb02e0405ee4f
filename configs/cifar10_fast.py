"""A fast CIFAR-10 recipe for a 2-core CPU: MobileNetV3-Small 1.0 with the small-input stem, 25 epochs.

    mobilejax train --config configs/cifar10_fast.py:folder=../shared/data/cifar10 --workdir runs/cifar10_fast
    # tfds (downloads cifar10 on a machine with internet; trains on train[:90%], validates on train[90%:]):
    mobilejax train --config configs/cifar10_fast.py --workdir runs/cifar10_fast
    # the accuracy of a trained checkpoint with other test-time views (flip only: --config.eval_shift=0):
    mobilejax eval --workdir runs/cifar10_fast --checkpoint latest

Recipe (short-schedule tricks from the fast-CIFAR literature that apply to a BatchNorm mobile network): a small model
that does many epochs in the budget (MobileNetV3-Small 1.0, small-input stem, 17.5M MACs, ~230-250 img/s for the
train step at batch 256 on 2 cores), batch 256, SGD + Nesterov with a 2-epoch linear warm-up to 0.3 then a linear
decay to 0, weight decay 5e-4 (not on BN/bias), label smoothing 0.1, pad-4-and-crop + flip, no dropout, and
test-time augmentation at evaluation over six views: the logits of the image and its mirror image (half the weight)
and of two copies moved by 2 pixels down-right and up-left (reflected borders), each with its mirror (a quarter each;
`eval_flip`, `eval_shift=2`). Trains on `train[:90%]` (45,000 images) and validates on `train[90%:]` (5,000,
stratified by class for the image-folder copy).

Measured on the 2-core CPU (AMD EPYC, jax 0.10.2, 2026-11-30, quiet machine), with the image-folder command above
(run with `eval_shift=0`; the test-time views do not change training, so the final checkpoint was then evaluated with
`mobilejax eval --checkpoint latest --config.eval_shift=S`): **89.18% validation accuracy** (`train[90%:]`, 5,000
images, flip + 2-pixel shift views; 88.56% with flip views only, 89.04% with 1-pixel shifts) in **76.8 min** of
training wall time (4,607 s including the five flip-only evaluations, 12 s compile, 247 img/s on average; curve after
epochs 5/10/15/20/25, flip views: 74.9/79.5/82.3/85.8/88.6%). **Short of the 90%-in-90-minutes target** by ~0.8
points (the best recipe measured on this CPU so far).

Longer does not help inside the budget: 28 epochs (`--config.num_epochs=28 --config.eval_every_epochs=7`, same day, a
slower sitting at 233 img/s, the four evaluations with six views) took **91.7 min** (5,500 s, over the budget) for
89.04% (six views) and 88.56% (flip views only), the same as 25 epochs; curve after epochs 7/14/21/28:
76.8/80.2/84.6/89.0%.

Nor does a wider model in the same time: MobileNetV3-Small 1.25 (28.5M MACs, 175 img/s) for 18 epochs
(`--config.model.alpha=1.25 --config.num_epochs=18 --config.eval_every_epochs=6`, 2026-11-30, quiet machine, six
views at every evaluation) reached **89.20%** (six views; 89.06% flip views only) in **78.3 min** (4,695 s); curve
after epochs 6/12/18: 76.5/82.5/89.2%. Parity with the default (89.18%).

History on this CPU (same recipe otherwise): MobileNetV2 0.5 (28.0M MACs), the previous default, reached 87.8% in
25 epochs / 77.3 min and 88.3% in 30 epochs / 91.3 min (88.8% with eval_shift=2) on a machine whose step was ~1.75x
faster than the one above (`--config.model.name=mobilenet_v2 --config.model.alpha=0.5`); MobileNetV3-Small 1.0 learns
faster per epoch (74.9 vs 71.4% after 5 epochs, 85.8 vs 81.7% after 20) and trains ~1.5x faster per image here.
XLA:CPU flags, bfloat16 (3x slower on XLA:CPU) and splitting the two cores into two data-parallel devices (10% slower)
do not make the step faster (docs/benchmarks.md).

Config arguments: model, alpha, res, epochs, batch, lr, folder=PATH, and any dotted key.
"""
from mobilejax.config import apply_args, get_config as default_config, model_config, parse_arg


def get_config(arg=None):
    args = parse_arg(arg)
    config = default_config()
    config.model = model_config(str(args.pop("model", "mobilenet_v3_small")), alpha=1.0, small_input=True, dropout=0.0)
    config.data.dataset = "cifar10"
    folder = args.pop("folder", None)
    if folder:
        config.data.dataset = f"image_folder:{folder}"
    config.data.train_split = "train[:90%]"
    config.data.eval_split = "train[90%:]"
    config.data.image_size = 32
    config.data.train_augment = "pad_crop"
    config.data.crop_padding = 4
    config.data.random_flip = True
    config.data.eval_resize = "resize"
    config.optim.optimizer = "sgd"
    config.optim.nesterov = True
    config.optim.learning_rate = 0.3
    config.optim.schedule = "linear"
    config.optim.warmup_epochs = 2.0
    config.optim.weight_decay = 5e-4
    config.optim.label_smoothing = 0.1
    config.batch_size = 256
    config.eval_batch_size = 500
    config.num_epochs = 25
    config.eval_every_epochs = 5
    config.eval_flip = True
    config.eval_shift = 2
    config.checkpoint_every_steps = 350
    return apply_args(config, args)
