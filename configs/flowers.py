"""MobileNetV2 from scratch on the tf_flowers photos (5 classes).

    # the image-folder copy (train/ 2,934 and val/ 736 photos):
    mobilejax train --config configs/flowers.py:folder=../shared/data/flowers --workdir runs/flowers
    # tfds (downloads tf_flowers, which has only `train`: 80/20 split by slicing):
    mobilejax train --config configs/flowers.py --workdir runs/flowers

Recipe for a 2-core CPU budget of about an hour: MobileNetV2 alpha 0.5 at 96 px (random-resized-crop + flip,
eval: resize 110 + center crop 96), 40 epochs, AdamW 2e-3 with 2 warm-up epochs and cosine decay, weight decay 0.05
(decoupled, not on BN/bias), label smoothing 0.1, batch 64, EMA of the weights off.

Measured on this 2-core CPU (jax 0.10.2, 2026-11-22), with the image-folder command above: 73.2% validation accuracy
(736 photos; after epochs 4/8/12/16/20/24/28/32/36/40: 45.0/56.8/60.5/66.3/67.7/70.5/72.3/72.4/72.6/73.2%), 45 min wall time
including a 76 s compile, 45 img/s on average -- while the machine was shared with other training runs and test
suites (load average 3-7), so an idle machine is faster. This is short of the 80% target: a longer schedule
(e.g. --config.num_epochs=100, ~2 h here) and a larger input (res=128/160, alpha=1.0) are the levers; published
from-scratch results on these photos (87-89%) use long schedules at 224 px.
"""
from mobilejax.config import apply_args, get_config as default_config, model_config, parse_arg


def get_config(arg=None):
    args = parse_arg(arg)
    config = default_config()
    config.model = model_config(str(args.pop("model", "mobilenet_v2")), alpha=0.5, dropout=0.2)
    folder = args.pop("folder", None)
    if folder:
        config.data.dataset = f"image_folder:{folder}"
        config.data.train_split = "train"
        config.data.eval_split = "val"
    else:
        config.data.dataset = "tf_flowers"
        config.data.train_split = "train[:80%]"
        config.data.eval_split = "train[80%:]"
    config.data.image_size = 96
    config.data.train_augment = "random_resized_crop"
    config.data.min_crop_area = 0.25
    config.data.random_flip = True
    config.data.eval_resize = "center_crop"
    config.optim.optimizer = "adamw"
    config.optim.learning_rate = 2e-3
    config.optim.weight_decay = 0.05
    config.optim.warmup_epochs = 2.0
    config.optim.label_smoothing = 0.1
    config.batch_size = 64
    config.eval_batch_size = 128
    config.num_epochs = 40
    config.eval_every_epochs = 4
    config.checkpoint_every_steps = 200
    return apply_args(config, args)
