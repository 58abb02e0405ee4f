"""Optimizers and learning-rate schedules (optax), built from `config.optim`.

Schedules: linear warmup followed by "cosine", "linear" (straight down to min_lr_ratio x peak), "step" (x step_factor at step_epochs), "exponential" (x decay_rate
every decay_epochs, staircase, as the MobileNet papers' RMSProp recipe) or "constant".
Optimizers: "sgd" (momentum, Nesterov; weight decay as L2 added to the gradient), "rmsprop" (the MobileNet papers'),
"adamw" (decoupled weight decay). BatchNorm parameters and biases are excluded from weight decay unless
`decay_bn_and_bias` is set; `grad_clip_norm` > 0 clips by global norm.
"""
from __future__ import annotations

import jax
import optax

OPTIMIZERS = ("sgd", "rmsprop", "adamw")
SCHEDULES = ("cosine", "linear", "step", "exponential", "constant")


# config.optim's numbers and the values that make sense for them (checked before a run writes anything).
RANGES = {
    "learning_rate": (lambda v: v > 0, "> 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0 (0: off)"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1) (0: off)"),
    "rmsprop_decay": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "rmsprop_eps": (lambda v: v > 0, "> 0"),
    "adam_b1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "adam_b2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "warmup_epochs": (lambda v: v >= 0, ">= 0 (0: off)"),
    "step_epochs": (lambda v: all(e >= 0 for e in v), "epochs >= 0"),
    "step_factor": (lambda v: v > 0, "> 0"),
    "decay_rate": (lambda v: v > 0, "> 0"),
    "decay_epochs": (lambda v: v > 0, "> 0"),
    "min_lr_ratio": (lambda v: 0 <= v <= 1, "in [0, 1] (a fraction of the peak learning rate)"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1) (0: off)"),
    "grad_clip_norm": (lambda v: v >= 0, ">= 0 (0: off)"),
    "ema_decay": (lambda v: 0 <= v < 1, "in [0, 1) (0: off)"),
}


def validate(optim_config) -> None:
    """config.optim's names and numbers: an unknown optimizer or schedule, or a number outside its range, is a
    ValueError naming the setting, its value and what is allowed (a negative weight decay or a label smoothing of 1.5
    would otherwise train, to nonsense)."""
    c = optim_config
    if c.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optim.optimizer {c.optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
    if c.schedule not in SCHEDULES:
        raise ValueError(f"unknown optim.schedule {c.schedule!r}; allowed: {', '.join(SCHEDULES)}")
    for key, (ok, allowed) in RANGES.items():
        if key in c and not ok(c[key]):
            raise ValueError(f"optim.{key}={c[key]!r} is invalid; allowed: {allowed}")


def schedule_numbers(optim_config, steps_per_epoch: int, total_steps: int) -> dict:
    """The numbers `create_schedule` builds the schedule from, resolved from `config.optim` and the run's length:
    two runs whose numbers agree have the same schedule (and so can share compiled code, `train/program.py`),
    whatever their lengths; a constant schedule without warm-up does not depend on the length at all."""
    c = optim_config
    validate(c)
    warmup = min(int(round(c.warmup_epochs * steps_per_epoch)), max(total_steps - 1, 0))
    n = {"kind": c.schedule, "peak": float(c.learning_rate), "warmup": warmup}
    rest = max(total_steps - warmup, 1)
    if c.schedule == "cosine":
        n.update(steps=rest, alpha=float(c.min_lr_ratio))
    elif c.schedule == "linear":
        n.update(steps=rest, end=float(c.learning_rate) * c.min_lr_ratio)
    elif c.schedule == "step":
        n["boundaries"] = {int(e * steps_per_epoch) - warmup: float(c.step_factor) for e in c.step_epochs
                           if int(e * steps_per_epoch) > warmup}
    elif c.schedule == "exponential":
        n.update(every=max(int(round(c.decay_epochs * steps_per_epoch)), 1), rate=float(c.decay_rate))
    return n


def create_schedule(optim_config, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    n = schedule_numbers(optim_config, steps_per_epoch, total_steps)
    peak, warmup = n["peak"], n["warmup"]
    if n["kind"] == "cosine":
        main = optax.cosine_decay_schedule(peak, n["steps"], alpha=n["alpha"])
    elif n["kind"] == "linear":
        main = optax.linear_schedule(peak, n["end"], n["steps"])
    elif n["kind"] == "step":
        main = optax.piecewise_constant_schedule(peak, n["boundaries"])
    elif n["kind"] == "exponential":
        main = optax.exponential_decay(peak, n["every"], n["rate"], staircase=True)
    else:
        main = optax.constant_schedule(peak)
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), main], [warmup])


def decay_mask(params):
    """True for the parameters weight decay applies to: kernels (ndim > 1), not BatchNorm scales/offsets or biases."""
    return jax.tree.map(lambda p: p.ndim > 1, params)


HEAD = "classifier"  # the top-level parameter collection a fine-tuning run replaces and trains at the full rate


def create_optimizer(optim_config, schedule: optax.Schedule, finetune=None) -> optax.GradientTransformation:
    """`config.optim`'s optimizer; with `finetune` (config.finetune) freezing the backbone or scaling its learning
    rate, the classifier and the backbone get separate transforms (optax.multi_transform)."""
    base = _optimizer(optim_config, schedule)
    freeze = bool(finetune is not None and finetune.freeze_backbone)
    scale = 1.0 if finetune is None else float(finetune.backbone_lr_scale)
    if not freeze and scale == 1.0:
        return base
    if not freeze and scale < 0:
        raise ValueError(f"finetune.backbone_lr_scale={scale} must be >= 0")
    backbone = optax.set_to_zero() if freeze else optax.chain(_optimizer(optim_config, schedule), optax.scale(scale))
    labels = lambda params: {k: jax.tree.map(lambda _: "head" if k == HEAD else "backbone", v)  # noqa: E731
                             for k, v in params.items()}
    return optax.multi_transform({"head": base, "backbone": backbone}, labels)


def _optimizer(optim_config, schedule: optax.Schedule) -> optax.GradientTransformation:
    c = optim_config
    validate(c)
    mask = None if c.decay_bn_and_bias else decay_mask
    chain = []
    if c.grad_clip_norm and c.grad_clip_norm > 0:
        chain.append(optax.clip_by_global_norm(c.grad_clip_norm))
    if c.optimizer == "adamw":
        chain.append(optax.adamw(schedule, b1=c.adam_b1, b2=c.adam_b2, weight_decay=c.weight_decay, mask=mask))
        return optax.chain(*chain)
    if c.weight_decay:
        chain.append(optax.add_decayed_weights(c.weight_decay, mask=mask))
    if c.optimizer == "sgd":
        chain.append(optax.sgd(schedule, momentum=c.momentum or None, nesterov=bool(c.nesterov and c.momentum)))
    else:
        chain.append(optax.rmsprop(schedule, decay=c.rmsprop_decay, eps=c.rmsprop_eps, momentum=c.momentum or None))
    return optax.chain(*chain)
