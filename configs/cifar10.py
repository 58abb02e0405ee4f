"""CIFAR-10 at 32x32 with the small-input stem (stem and first downsampling at stride 1, as CIFAR ports do).

    # tfds (downloads cifar10 on a machine with internet):
    mobilejax train --config configs/cifar10.py --workdir runs/cifar10
    # the image-folder copy of CIFAR-10's training set (only `train`: 90/10 stratified train/validation split):
    mobilejax train --config configs/cifar10.py:folder=../shared/data/cifar10 --workdir runs/cifar10
    # other families / widths: --config configs/cifar10.py:model=mobilenet_v3_small,alpha=0.75

Config arguments: model, alpha, res, epochs, batch, lr, folder=PATH (an image folder with a `train` split), and any
dotted key. Recipe: SGD + Nesterov 0.1, cosine, 1 warm-up epoch, weight decay 5e-5 (no decay on BN/bias), label
smoothing 0.1, pad-and-crop + flip. The default 30 epochs take hours on a 2-core CPU (MobileNetV2 1.0 with the
small-input stem costs ~90M MACs per image at 32 px); the ablation sweeps in experiments/ use shorter budgets.
"""
from mobilejax.config import apply_args, get_config as default_config, model_config, parse_arg


def get_config(arg=None):
    args = parse_arg(arg)
    config = default_config()
    config.model = model_config(str(args.pop("model", "mobilenet_v2")), small_input=True)
    config.data.dataset = "cifar10"
    folder = args.pop("folder", None)
    if folder:
        config.data.dataset = f"image_folder:{folder}"
    config.data.train_split = "train[:90%]"
    config.data.eval_split = "train[90%:]"   # tfds cifar10 also has "test"
    config.data.image_size = 32
    config.data.train_augment = "pad_crop"
    config.data.crop_padding = 4
    config.data.random_flip = True
    config.data.eval_resize = "resize"
    config.optim.optimizer = "sgd"
    config.optim.learning_rate = 0.1
    config.optim.weight_decay = 5e-5
    config.optim.warmup_epochs = 1.0
    config.optim.label_smoothing = 0.1
    config.batch_size = 128
    config.eval_batch_size = 500
    config.num_epochs = 30
    config.checkpoint_every_steps = 500
    return apply_args(config, args)
