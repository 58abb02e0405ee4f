"""Fine-tuning on the tf_flowers photos from pretrained weights (`init_from`), against from-scratch at the same budget.

    # pretrain on CIFAR-10 (configs/cifar10_fast.py's batch-256 recipe of 2026-11-25 with MobileNetV2 0.5, small-input
    # stem, 32 px), then fine-tune:
    mobilejax train --config configs/cifar10_fast.py:folder=../shared/data/cifar10,model=mobilenet_v2,alpha=0.5 \
        --config.batch_size=256 --config.optim.learning_rate=0.3 --config.optim.label_smoothing=0.1 \
        --config.num_epochs=25 --config.eval_every_epochs=5 --config.eval_shift=0 --workdir runs/cifar10_fast_v2
    mobilejax train --config configs/flowers_finetune.py:folder=../shared/data/flowers,init_from=runs/cifar10_fast_v2 \
        --workdir runs/flowers_finetune
    # the same recipe from scratch (the comparison):
    mobilejax train --config configs/flowers_finetune.py:folder=../shared/data/flowers --workdir runs/flowers_scratch
    # from ImageNet weights (where they can be downloaded): convert, then start from the converted directory
    mobilejax convert --from keras mobilenet_v2 --alpha 0.5 --weights mobilenet_v2_0.5_224.h5 --out runs/keras_v2
    mobilejax train --config configs/flowers_finetune.py:folder=../shared/data/flowers,init_from=runs/keras_v2,res=224 \
        --config.model.padding=same --config.model.bn_epsilon=1e-3 --config.data.normalize=minus_one_one \
        --workdir runs/flowers_keras

Recipe: configs/flowers.py (its data, augmentation and optimizer, without the TrivialAugment and 180 px evaluation it
gained on 2026-12-05) changed to MobileNetV2 0.5 with the standard stem at 128 px. A model trained with the
small-input stem at 32 px sees feature maps of the same sizes (32 -> 4 at stride 8) as the standard stem at 128 px
(128 -> 4 at stride 32), and the stem is the only difference in parameters-free strides, so the CIFAR weights load
unchanged and the train step costs what a CIFAR step costs. The classifier is replaced (5 classes); the whole
network is fine-tuned (`finetune.backbone_lr_scale` < 1 slows the backbone, `finetune.freeze_backbone=True` trains
the classifier only). AdamW 1e-3, 1 warm-up epoch, cosine decay, weight decay
0.05, label smoothing 0.1, random-resized-crop (>= 25% of the photo) + flip, batch 64, 30 epochs; validation on `val/`
(736 photos), resize 146 + center crop 128.

Measured (jax 0.10.2, 2026-11-25, the 2-core CPU, the image-folder commands above; init_from = the 25-epoch
configs/cifar10_fast.py run with MobileNetV2 0.5, its default then, 87.8% on CIFAR-10), validation accuracy after
epochs 5/10/15/20/25/30:

| start | val accuracy (val/, 736 photos) | curve | training wall time |
|---|---|---|---|
| CIFAR-10 weights (`init_from`) | **85.2%** | 74.5 / 78.9 / 83.7 / 84.6 / 85.2 / 85.2% | 419 s (221 img/s) |
| from scratch (same recipe and budget) | 69.6% | 47.6 / 60.5 / 63.2 / 67.5 / 68.9 / 69.6% | 408 s (223 img/s) |

Pretraining on CIFAR-10 buys 15.6 points at this budget (and nearly matches configs/flowers.py's 86.3%, from scratch
at 224 px for 150 epochs and 2.5 hours, in 7 minutes). From ImageNet weights (the second command block) the accuracy
is to be measured where the weights can be downloaded (published on these photos: MobileNetV2 0.35 93.6% and
MobileNetV1 0.5 95.1% fine-tuned, STM32 model zoo); this machine has no network access.
"""
import os
import sys

from mobilejax.config import apply_args, parse_arg

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flowers  # noqa: E402  (the from-scratch recipe; this file changes its resolution and schedule)


def get_config(arg=None):
    args = parse_arg(arg)
    init_from = args.pop("init_from", None)
    config = flowers.get_config({"model": args.pop("model", "mobilenet_v2"), "folder": args.pop("folder", None)})
    if init_from:
        config.init_from = str(init_from)
        config.init_checkpoint = "best"
    config.data.image_size = 128
    config.data.eval_image_size = 0  # evaluation at image_size, as this docstring's results were measured
    config.data.auto_augment = "none"  # (configs/flowers.py's TrivialAugment came after these results)
    config.optim.learning_rate = 1e-3
    config.optim.warmup_epochs = 1.0
    config.num_epochs = 30
    config.eval_flip, config.eval_shift = False, 0  # one view, as this docstring's results were measured
    config.eval_every_epochs = 5
    config.checkpoint_every_steps = 1000
    return apply_args(config, args)
