"""The train state, the model built from a config, the device mesh, and the config checks a run needs first."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax.training import train_state
from jax.sharding import Mesh

from mobilejax import optim
from mobilejax.data import Options
from mobilejax.errors import UsageError
from mobilejax.models import create_model_from_config
from mobilejax.train import mixing, resizing
from mobilejax.train.pretrained import CHECKPOINTS

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class TrainState(train_state.TrainState):
    batch_stats: Any = None
    ema_params: Any = None        # None unless optim.ema_decay > 0
    ema_batch_stats: Any = None


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Every setting of a run, before anything is written or read: the run-level ones here, the data, optimizer,
    mixing, resizing and model settings by the modules that use them."""
    n, hosts = jax.device_count(), jax.process_count()
    where = f"{n}" if hosts == 1 else f"{n}: {hosts} processes x {jax.local_device_count()}"
    for key in ("batch_size", "eval_batch_size"):
        v = config[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v % n:
            raise UsageError(f"{key}={v!r} must be a positive multiple of the number of devices ({where})")
    if not (config.num_train_steps > 0 or config.num_epochs > 0):
        raise UsageError(f"num_epochs={config.num_epochs!r} and num_train_steps={config.num_train_steps!r}: "
                         "set num_epochs > 0 or num_train_steps > 0")
    if config.dtype not in DTYPES:
        raise UsageError(f"unknown dtype {config.dtype!r}; allowed: {', '.join(DTYPES)}")
    for key in ("log_every_steps", "checkpoint_every_steps", "keep_checkpoints"):
        if config[key] < 1:
            raise UsageError(f"{key}={config[key]!r} is invalid; allowed: an integer >= 1")
    if not config.eval_every_epochs > 0:
        raise UsageError(f"eval_every_epochs={config.eval_every_epochs!r} is invalid; allowed: a number of epochs > 0 "
                         "(e.g. 0.5 or 10)")
    if config.get("init_checkpoint", "best") not in CHECKPOINTS:
        raise UsageError(f"init_checkpoint={config.init_checkpoint!r} is invalid; allowed: {', '.join(CHECKPOINTS)}")
    Options.from_config(config.data)
    optim.validate(config.optim)
    eval_views(config)
    mixing.validate(config.data.mixup_alpha, config.data.cutmix_alpha)
    resizing.validate(config.data, config.num_epochs if config.num_train_steps <= 0 else 0)
    # the model's name and knobs, before any data set is opened (preparing a tfds set can take minutes); the number
    # of classes comes from the data, so any placeholder builds the same network body here
    create_model_from_config(config.model, num_classes=config.model.num_classes or 2)


def eval_views(config: ml_collections.ConfigDict) -> tuple[bool, int]:
    """(eval_flip, eval_shift), checked: the shift is a whole number of pixels, reflected inside the image."""
    shift, size = config.get("eval_shift", 0), config.data.get("eval_image_size") or config.data.image_size
    if isinstance(shift, bool) or not isinstance(shift, int) or not 0 <= shift < size:
        raise UsageError(f"eval_shift={shift!r} must be an integer in [0, {size}) (pixels; the evaluation images' "
                         f"size is {size})")
    return bool(config.eval_flip), shift


def build_model(config: ml_collections.ConfigDict, num_classes: int):
    if config.dtype not in DTYPES:
        raise UsageError(f"unknown dtype {config.dtype!r}; allowed: {', '.join(DTYPES)}")
    if config.model.num_classes is not None and config.model.num_classes != num_classes:
        raise UsageError(f"config.model.num_classes={config.model.num_classes} but the dataset has {num_classes} "
                         "classes; leave model.num_classes unset to take it from the data")
    dtype = None if config.dtype == "float32" else DTYPES[config.dtype]
    frozen = bool(config.get("finetune") and config.finetune.freeze_backbone) or None
    return create_model_from_config(config.model, num_classes=num_classes, dtype=dtype, freeze_bn=frozen)


def make_mesh() -> Mesh:
    """All devices of all processes on one "data" axis, each process's devices together and in process order (the
    order in which `put_batch` lays out the processes' shares of a batch)."""
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    return Mesh(np.array(devices), ("data",))


def init_state(model, tx, rng, image_size: int, ema: bool) -> TrainState:
    variables = model.init({"params": rng, "dropout": rng}, jnp.zeros((1, image_size, image_size, 3)), train=False)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx, batch_stats=batch_stats,
                             ema_params=params if ema else None, ema_batch_stats=batch_stats if ema else None)
