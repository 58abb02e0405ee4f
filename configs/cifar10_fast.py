"""A fast CIFAR-10 recipe for a 2-core CPU: MobileNetV2 0.5 with the small-input stem, 25 epochs.

    mobilejax train --config configs/cifar10_fast.py:folder=../shared/data/cifar10 --workdir runs/cifar10_fast
    # tfds (downloads cifar10 on a machine with internet; trains on train[:90%], validates on train[90%:]):
    mobilejax train --config configs/cifar10_fast.py --workdir runs/cifar10_fast

Recipe (short-schedule tricks from the fast-CIFAR literature that apply to a BatchNorm mobile network): a narrow
model that does many epochs in the budget (MobileNetV2 alpha 0.5, small-input stem, ~270 img/s for the train step
at batch 256 on 2 cores), batch 256, SGD + Nesterov with a 2-epoch linear warm-up to 0.3 then a linear decay to 0,
weight decay 5e-4 (not on BN/bias), label smoothing 0.1, pad-4-and-crop + flip, no dropout, and flip test-time
augmentation at evaluation (`eval_flip`). Trains on `train[:90%]` (45,000 images) and validates on `train[90%:]`
(5,000, stratified by class for the image-folder copy).

Measured on the 2-core CPU (jax 0.10.2, 2026-11-25; the machine was shared with test suites for part of the run,
load average ~3), with the image-folder command above: **87.8% validation accuracy** (`train[90%:]`, 5,000 images,
flip TTA; after epochs 5/10/15/20/25: 71.4/77.0/77.2/81.7/87.8%) in 77.3 min of training wall time (10 s compile,
244 img/s on average).
The same recipe at 30 epochs (`--config.num_epochs=30`, same machine, quiet for the second part, stopped and
resumed once at step 2160): **88.3%** (epochs 5/10/.../30: 70.7/76.4/71.4/79.5/84.1/88.3%) in 91.3 min (5,478 s
training wall time, 235 img/s on average): five more epochs bought half a point, and the budget is spent.
Translation test-time augmentation on that checkpoint (`mobilejax eval --workdir ... --checkpoint latest
--config.eval_shift=S`: the flip views of the image and of two copies moved by S pixels, reflected borders): 88.28%
(S=0, as trained) -> 88.60% (S=1) -> 88.80% (S=2), on the same 5,000 images.
**Short of the 90%-in-90-minutes target** on both counts. The train step alone runs at ~275 img/s; the runs
average 235-244 img/s because tf.data's JPEG decode shares the two cores and evaluations count in the wall time.
XLA:CPU flags, bfloat16 (3x slower on XLA:CPU) and splitting the two cores into two data-parallel devices (10%
slower) do not make the step faster (docs/benchmarks.md): what remains is a better recipe at the same ~30-epoch
budget (or a faster step).

Config arguments: model, alpha, res, epochs, batch, lr, folder=PATH, and any dotted key.
"""
from mobilejax.config import apply_args, get_config as default_config, model_config, parse_arg


def get_config(arg=None):
    args = parse_arg(arg)
    config = default_config()
    config.model = model_config(str(args.pop("model", "mobilenet_v2")), alpha=0.5, small_input=True, dropout=0.0)
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
    config.checkpoint_every_steps = 350
    return apply_args(config, args)
