"""Default hyper-parameters of every run; each config in configs/ starts from `get_config()` and overrides.

Fields:
  model.*  the model's registry name and knobs (`None` = the family's default; a knob the family lacks is an error)
  data.*   dataset, splits, resolution and augmentation
  optim.*  optimizer, learning-rate schedule and regularisation
  the rest: run length, batch size, evaluation/checkpoint cadence, precision, logging.
"""
import ast
import os
import sys

import ml_collections
from absl import flags
from ml_collections import config_dict

from mobilejax.errors import UsageError
from mobilejax.models.registry import knob_types

# Every model knob of every family, with its type (from the registry): placeholders keep the types for
# command-line overrides, and `None` means the family's own default.
MODEL_KNOBS = knob_types()


def model_config(name: str, **knobs) -> ml_collections.ConfigDict:
    m = ml_collections.ConfigDict()
    m.name = name
    m.num_classes = config_dict.placeholder(int)  # None: from the dataset
    for k, t in MODEL_KNOBS.items():
        setattr(m, k, config_dict.placeholder(t))
    for k, v in knobs.items():
        if k not in m:
            raise KeyError(f"unknown model knob {k!r}; known: {', '.join(sorted(m.keys()))}")
        setattr(m, k, v)
    return m


def get_config():
    config = ml_collections.ConfigDict()
    config.seed = 0

    config.model = model_config("mobilenet_v2")

    config.data = ml_collections.ConfigDict()
    config.data.dataset = "tf_flowers"            # a tfds name, "image_folder:PATH", or "sklearn_digits"
    config.data.data_dir = config_dict.placeholder(str)  # tfds data_dir (None: tfds' default)
    config.data.train_split = "train[:90%]"
    config.data.eval_split = "train[90%:]"
    config.data.image_size = 224
    config.data.eval_image_size = 0              # evaluation images' side; 0: image_size (larger: "FixRes" testing)
    config.data.train_augment = "random_resized_crop"  # "random_resized_crop" | "pad_crop" | "none"
    config.data.random_flip = True
    config.data.alternate_flip = False           # with random_flip: each image mirrored in every other epoch (airbench)
    config.data.min_crop_area = 0.08             # random_resized_crop's smallest area fraction
    config.data.crop_padding = 4                 # pad_crop's padding, in pixels at image_size
    config.data.random_rotation = 0.0            # rotation by a uniform angle in [-r, r] degrees (reflected); 0: off
    config.data.auto_augment = "none"            # "trivial": TrivialAugment, one random op per image (data/autoaugment*.py)
    config.data.progressive_size = 0             # > 0: train at this side first, then grow to image_size (train/resizing)
    config.data.progressive_epochs = (0.0, 0.0)  # (start, end): the growth, linear, from epoch start to epoch end
    config.data.progressive_step = 4             # the sizes in between are multiples of this (one compile per size)
    config.data.mixup_alpha = 0.0                # MixUp of batch neighbours, lam ~ Beta(a, a) (train/mixing.py); 0: off
    config.data.cutmix_alpha = 0.0               # CutMix likewise; both > 0: one of the two per batch, 50/50
    config.data.eval_resize = "center_crop"      # "center_crop" (resize shorter side, crop 87.5%) | "resize"
    config.data.eval_crop_fraction = 0.875
    config.data.normalize = "imagenet"            # "imagenet" (mean/std, torchvision) | "minus_one_one" (Keras)
    config.data.shuffle_buffer = 10_000
    config.data.cache = True                     # cache decoded examples in memory (small datasets)
    config.data.num_parallel_calls = -1          # -1: tf.data AUTOTUNE
    config.data.pipeline = "tf"                  # "tf" (tf.data) | "memory" (small images decoded once; no TensorFlow)

    config.optim = ml_collections.ConfigDict()
    config.optim.optimizer = "sgd"               # "sgd" | "rmsprop" | "adamw"
    config.optim.learning_rate = 0.1             # peak learning rate for batch_size (no implicit scaling)
    config.optim.momentum = 0.9
    config.optim.nesterov = True
    config.optim.rmsprop_decay = 0.9
    config.optim.rmsprop_eps = 1e-3
    config.optim.adam_b1 = 0.9
    config.optim.adam_b2 = 0.999
    config.optim.weight_decay = 4e-5
    config.optim.decay_bn_and_bias = False      # False: no weight decay on BatchNorm scales/offsets and biases
    config.optim.schedule = "cosine"            # "cosine" | "linear" | "step" | "exponential" | "constant"
    config.optim.warmup_epochs = 1.0
    config.optim.step_epochs = (30, 60, 90)     # "step": multiply by step_factor at these epochs
    config.optim.step_factor = 0.1
    config.optim.decay_rate = 0.97              # "exponential": lr *= decay_rate every decay_epochs
    config.optim.decay_epochs = 2.4
    config.optim.min_lr_ratio = 0.0             # "cosine", "linear": final lr as a fraction of the peak
    config.optim.label_smoothing = 0.1
    config.optim.grad_clip_norm = 0.0           # 0: off
    config.optim.ema_decay = 0.0                # 0: off; e.g. 0.9999 for an EMA of the weights used for eval

    # fine-tuning: start from another run's (or a `mobilejax convert`ed) weights instead of a random init
    config.init_from = config_dict.placeholder(str)  # a run directory; its classifier is replaced if the classes differ
    config.init_checkpoint = "best"             # "best" | "latest" checkpoint of init_from
    config.finetune = ml_collections.ConfigDict()
    config.finetune.freeze_backbone = False     # True: train the classifier only (backbone BatchNorm in eval mode)
    config.finetune.backbone_lr_scale = 1.0     # the backbone's learning rate as a fraction of optim.learning_rate

    config.batch_size = 64
    config.eval_batch_size = 128
    config.num_epochs = 10.0
    config.num_train_steps = -1                 # > 0 overrides num_epochs
    config.dtype = "float32"                    # compute dtype: "float32" | "bfloat16" (parameters stay float32)

    config.log_every_steps = 20
    config.eval_every_epochs = 1.0
    config.eval_flip = False                    # True: evaluate on the mean logits of each image and its mirror image
    config.eval_shift = 0                       # > 0: also the image moved by that many pixels down-right and up-left
    config.checkpoint_every_steps = 500
    config.keep_checkpoints = 2
    config.progress = True                      # progress bar on the terminal
    config.overwrite = False                    # True: allow a workdir holding another model's run to be replaced
    config.allow_changes = False                # True: resume a run with changed settings (recorded in run.json)
    return config


# Short names accepted in config arguments ("configs/x.py:model=mobilenet_v3_small,alpha=0.5,res=160").
ARG_ALIASES = {"alpha": "model.alpha", "dataset": "data.dataset", "res": "data.image_size",
               "resolution": "data.image_size", "batch": "batch_size", "epochs": "num_epochs",
               "steps": "num_train_steps", "lr": "optim.learning_rate"}


def parse_arg(arg: str | dict | None) -> dict:
    """"a=1,b=x" -> {"a": 1, "b": "x"} (values parsed as Python literals where they are one, and true / false in
    any case as booleans, as `--config.KEY=false` reads them); a dict is copied (a config file calling another one's
    `get_config`)."""
    if isinstance(arg, dict):
        return dict(arg)
    out = {}
    for item in (arg or "").split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"config argument {item!r} is not KEY=VALUE; e.g. model=mobilenet_v2,alpha=0.5")
        key, value = item.split("=", 1)
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            value = {"true": True, "false": False}.get(value.strip().lower(), value)
        out[key.strip()] = value
    return out


def parse_args(items: list[str]) -> dict:
    """["a=1", "b=x,c=2"] (e.g. repeated --option flags) -> {"a": 1, "b": "x", "c": 2}."""
    out = {}
    for item in items:
        out.update(parse_arg(item))
    return out


def apply_args(config: ml_collections.ConfigDict, arg: str | dict | None) -> ml_collections.ConfigDict:
    """Apply config arguments (a "k=v,..." string or a dict): `model=NAME` resets the model section to that family's
    defaults; `alpha`, `dataset`, `res`, `batch`, `epochs`, `steps`, `lr` are short names; any other key is a dotted
    path (e.g. optim.optimizer)."""
    args = parse_arg(arg)
    if "model" in args:
        config.model = model_config(str(args.pop("model")))
    for key, value in args.items():
        path = ARG_ALIASES.get(key, key)
        set_path(config, path, value, what="config argument")
    return config


def resolve_path(config: ml_collections.ConfigDict, path: str, what: str = "override"):
    """The section holding dotted key `path` and the key's last part; a KeyError naming the known keys if any part of
    the path does not exist."""
    node = config
    parts = path.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            where = ".".join(parts[:i]) or "config"
            known = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else "(none)"
            raise KeyError(f"{what} {path!r}: {where} has no key {part!r}; known keys: {known}")
        if i < len(parts) - 1:
            node = node[part]
    return node, parts[-1]


def set_path(config: ml_collections.ConfigDict, path: str, value, what: str = "override"):
    """Set `a.b.c` in a config, failing with the known keys when any part of the path does not exist."""
    node, key = resolve_path(config, path, what)
    current = node[key]
    if isinstance(value, float) and isinstance(current, int) and not isinstance(current, bool) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and isinstance(current, float):
        value = float(value)
    node[key] = value


def from_dict(values: dict) -> ml_collections.ConfigDict:
    """Rebuild a run's config (e.g. a workdir's config.json) on top of the typed defaults."""
    config = get_config()

    def merge(node, d, prefix):
        for k, v in d.items():
            if k not in node:
                raise KeyError(f"saved config has unknown key {prefix + k!r}")
            if isinstance(node[k], ml_collections.ConfigDict):
                merge(node[k], v, prefix + k + ".")
            else:
                node[k] = tuple(v) if isinstance(v, list) else v

    merge(config, values, "")
    return config


def load_config(config_args: list[str], base: ml_collections.ConfigDict | None = None) -> ml_collections.ConfigDict:
    """Parse `--config FILE[:ARGS]` and `--config.x.y=v` with ml-collections' config_flags (a locked config).

    With `base` (e.g. a workdir's saved config) only `--config.x.y=v` overrides are accepted. Every mistake (a
    missing or broken config file, a misspelt key, a value of the wrong type) is a UsageError with one line."""
    from ml_collections import config_flags

    for a in config_args:
        if not a.startswith("--config"):
            raise UsageError(f"unexpected argument {a!r}; expected --config FILE[:ARGS] or --config.KEY=VALUE")
    path = "the saved config"
    if base is None:
        files = [a.split("=", 1)[1] for a in config_args if a.startswith("--config=")]
        if not files:
            raise UsageError("--config FILE is required, e.g. --config configs/quickstart.py")
        path = files[-1].split(":", 1)[0]
        if not os.path.isfile(path):
            raise UsageError(f"config file {path!r} does not exist")
    elif any(a.startswith("--config=") for a in config_args):
        raise UsageError("this command reads the config saved in the workdir: give only --config.KEY=VALUE overrides")
    argv = ["mobilejax"] + config_args
    # ml-collections loads every config file as the module `config_config`, executing it into the module object a
    # previous load left in sys.modules: in one process (a notebook, in-process sweep trials) a file without
    # get_config() would run the previous file's. Each load starts from a fresh module.
    sys.modules.pop("config_config", None)
    fv = flags.FlagValues()
    try:  # config_flags discovers the `--config.*` override flags from the argv given here (not from sys.argv)
        if base is None:
            config_flags.DEFINE_config_file("config", None, "ml-collections config file", flag_values=fv,
                                            lock_config=True, sys_argv=argv)
        else:
            base.lock()
            config_flags.DEFINE_config_dict("config", base, "the run's config", flag_values=fv, lock_config=True,
                                            sys_argv=argv)
        fv(argv)
        config = fv["config"].value
    except Exception as e:  # a broken config file raises anything; report it as one line
        told = config_error(e)
        if "has no attribute 'get_config'" in told:
            raise UsageError(f"bad config: {path!r} defines no get_config() function") from None
        raise UsageError(f"bad config: {told}") from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise UsageError(f"bad config: get_config() of {path!r} returned {type(config).__name__}, not an "
                         "ml_collections.ConfigDict")
    return config


def config_error(e: BaseException) -> str:
    """What went wrong in a config file or override, on one line: ml-collections wraps an exception raised inside
    the file in messages that carry its whole traceback, so the first exception of the chain without one is told,
    with its type unless it is a flag error (a bad `--config.KEY=VALUE`)."""
    chain = [e]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    told = next((x for x in chain if "Traceback (most recent call last)" not in str(x)), chain[-1])
    return one_line(told) if isinstance(told, flags.Error) else f"{type(told).__name__}: {one_line(told)}"


def one_line(e: BaseException) -> str:
    """An exception's message on one line (KeyErrors and wrapped exceptions unwrapped)."""
    while e.args and isinstance(e.args[0], BaseException):
        e = e.args[0]
    msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    lines = [line.strip() for line in msg.splitlines() if line.strip()]
    return "; ".join(lines) or type(e).__name__
