"""The jit-compiled train and eval steps and their shardings.

The train step is `jax.jit`-compiled with the state donated, over a device mesh with one "data" axis (one device is
a mesh of one): the batch is sharded over all local devices and the state replicated, so the same code runs data
parallel on a multi-core host, a GPU box or a TPU slice. BatchNorm statistics are computed over the global batch. In a multi-process run each
process feeds its share of the global batch (`put_batch`), and the steps run over the devices of all processes.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from mobilejax.train import mixing, resizing
from mobilejax.train.state import TrainState, eval_views


def cross_entropy(logits, labels, num_classes: int, smoothing: float = 0.0):
    targets = jax.nn.one_hot(labels, num_classes)
    if smoothing:
        targets = optax.smooth_labels(targets, smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def train_step(state: TrainState, batch, rng, *, label_smoothing: float, ema_decay: float, schedule,
               mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, image_size: int = 0):
    """One SGD step on `batch`; `image_size` > 0: on the batch resized to that side first (progressive resizing)."""
    dropout_rng = jax.random.fold_in(rng, state.step)
    mixed = mixup_alpha or cutmix_alpha
    images = resizing.resize(batch["image"], image_size) if image_size else batch["image"]
    images, partner_labels, lam = mixing.mix_batch(jax.random.fold_in(dropout_rng, 1), images, batch["label"],
                                                   mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha)

    def loss_fn(params):
        logits, new_vars = state.apply_fn({"params": params, "batch_stats": state.batch_stats}, images,
                                          train=True, mutable=["batch_stats"], rngs={"dropout": dropout_rng})
        loss = cross_entropy(logits, batch["label"], logits.shape[-1], label_smoothing)
        if mixed:  # the cross-entropy against the mixed targets (it is linear in the targets)
            loss = lam * loss + (1.0 - lam) * cross_entropy(logits, partner_labels, logits.shape[-1], label_smoothing)
        loss = loss.mean()
        return loss, (logits, new_vars["batch_stats"])

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    lr = schedule(state.step)
    state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    if ema_decay:
        ema = lambda e, p: ema_decay * e + (1.0 - ema_decay) * p
        state = state.replace(ema_params=jax.tree.map(ema, state.ema_params, state.params),
                              ema_batch_stats=jax.tree.map(ema, state.ema_batch_stats, state.batch_stats))
    metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["label"]), "lr": lr}
    return state, metrics


def _shift(images, pixels: int):
    """Each image moved by `pixels` down and right (negative: up and left), the border filled by reflection."""
    p = abs(pixels)
    padded = jnp.pad(images, ((0, 0), (p, p), (p, p), (0, 0)), mode="reflect")
    h, w = images.shape[1:3]
    start = 0 if pixels > 0 else 2 * p
    return padded[:, start:start + h, start:start + w, :]


def tta_logits(apply, images, *, flip: bool = False, shift: int = 0):
    """Test-time augmentation: the logits of `images` averaged over views. `flip`: the image and its mirror image,
    equally weighted. `shift` > 0: half the weight on those views of the image itself, half on the same views of the
    image moved by `shift` pixels down-right and up-left (reflected borders), a quarter each."""
    def views(x):
        out = apply(x)
        return 0.5 * (out + apply(x[:, :, ::-1, :])) if flip else out

    logits = views(images)
    if shift:
        logits = 0.5 * logits + 0.25 * (views(_shift(images, shift)) + views(_shift(images, -shift)))
    return logits


def eval_step(state: TrainState, batch, *, use_ema: bool, flip: bool = False, shift: int = 0):
    params = state.ema_params if use_ema else state.params
    stats = state.ema_batch_stats if use_ema else state.batch_stats
    apply = lambda x: state.apply_fn({"params": params, "batch_stats": stats}, x, train=False)  # noqa: E731
    logits = tta_logits(apply, batch["image"], flip=flip, shift=shift)
    mask = batch["mask"]
    loss = cross_entropy(logits, batch["label"], logits.shape[-1])
    correct = (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32)
    return {"loss_sum": jnp.sum(loss * mask), "correct": jnp.sum(correct * mask), "count": jnp.sum(mask)}


class Steps:
    """The jit-compiled train/eval steps with their shardings."""

    def __init__(self, config, schedule, mesh: Mesh):
        self.mesh = mesh
        self.repl = NamedSharding(mesh, P())
        self.data = NamedSharding(mesh, P("data"))
        self.use_ema = bool(config.optim.ema_decay)
        self._train_fn = functools.partial(train_step, label_smoothing=config.optim.label_smoothing,
                                           ema_decay=config.optim.ema_decay, schedule=schedule,
                                           mixup_alpha=float(config.data.mixup_alpha),
                                           cutmix_alpha=float(config.data.cutmix_alpha))
        self.train = self._jit_train(0)
        self._train_at = {0: self.train}
        flip, shift = eval_views(config)
        self.eval = jax.jit(functools.partial(eval_step, use_ema=self.use_ema, flip=flip, shift=shift),
                            in_shardings=(self.repl, self.data), out_shardings=self.repl)

    def _jit_train(self, image_size: int):
        return jax.jit(functools.partial(self._train_fn, image_size=image_size),
                       in_shardings=(self.repl, self.data, self.repl), out_shardings=(self.repl, self.repl),
                       donate_argnums=(0,))

    def train_at(self, image_size: int, full_size: int):
        """The train step on batches resized to `image_size` px (progressive resizing, train/resizing.py): `train`
        itself when that is the batches' own side `full_size`; compiled once per size."""
        key = 0 if image_size == full_size else image_size
        if key not in self._train_at:
            self._train_at[key] = self._jit_train(key)
        return self._train_at[key]

    def put_batch(self, batch: dict) -> dict:
        """A host batch -> a global array sharded over the data axis. In a multi-process run `batch` is this
        process's share (its rows of the global batch, in process order)."""
        if jax.process_count() == 1:
            return jax.device_put(batch, self.data)
        n = jax.process_count()
        return {k: jax.make_array_from_process_local_data(self.data, np.asarray(v), (v.shape[0] * n, *v.shape[1:]))
                for k, v in batch.items()}


def evaluate_batches(steps: Steps, state, batches) -> dict:
    totals = None
    for batch in batches:
        out = steps.eval(state, steps.put_batch(batch))
        totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
    if totals is None:
        raise ValueError("the evaluation split is empty")
    totals = jax.device_get(totals)
    n = int(round(float(totals["count"])))
    return {"accuracy": float(totals["correct"]) / n, "loss": float(totals["loss_sum"]) / n, "num_examples": n}
