"""Training and evaluation: `train_and_evaluate(config, workdir)`, `evaluate(...)`, `predict(...)`.

The train step is `jax.jit`-compiled with the state donated, over a device mesh with one "data" axis (one device is
a mesh of one): the batch is sharded over all local devices and the state replicated, so the same code runs data
parallel on a multi-core host, a GPU box or a TPU slice. BatchNorm statistics are computed over the global batch.
A rerun with the same workdir resumes from the latest checkpoint (step, optimizer, data order and RNG).
"""
from __future__ import annotations

import functools
import json
import math
import os
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax.training import train_state
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from mobilejax import config as config_lib
from mobilejax.checkpoint import Checkpoints
from mobilejax.metrics import MetricWriter, plot_learning_curves, read_metrics
from mobilejax.models import create_model_from_config
from mobilejax.optim import create_optimizer, create_schedule

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class TrainState(train_state.TrainState):
    batch_stats: Any = None
    ema_params: Any = None        # None unless optim.ema_decay > 0
    ema_batch_stats: Any = None


class WorkdirConflictError(ValueError):
    pass


def enable_compilation_cache(path: str | None = None) -> str:
    """JAX's persistent compilation cache, so a rerun of the same config skips most of the compile."""
    path = path or os.environ.get("MOBILEJAX_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                                          "mobilejax", "jax")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


# ---------------------------------------------------------------------------------------------------------------------
# Model, state and steps


def build_model(config: ml_collections.ConfigDict, num_classes: int):
    if config.dtype not in DTYPES:
        raise ValueError(f"unknown dtype {config.dtype!r}; allowed: {', '.join(DTYPES)}")
    if config.model.num_classes is not None and config.model.num_classes != num_classes:
        raise ValueError(f"config.model.num_classes={config.model.num_classes} but the dataset has {num_classes} "
                         "classes; leave model.num_classes unset to take it from the data")
    dtype = None if config.dtype == "float32" else DTYPES[config.dtype]
    return create_model_from_config(config.model, num_classes=num_classes, dtype=dtype)


def make_mesh() -> Mesh:
    return Mesh(np.array(jax.devices()), ("data",))


def init_state(model, tx, rng, image_size: int, ema: bool) -> TrainState:
    variables = model.init({"params": rng, "dropout": rng}, jnp.zeros((1, image_size, image_size, 3)), train=False)
    params, batch_stats = variables["params"], variables.get("batch_stats", {})
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx, batch_stats=batch_stats,
                             ema_params=params if ema else None, ema_batch_stats=batch_stats if ema else None)


def cross_entropy(logits, labels, num_classes: int, smoothing: float = 0.0):
    targets = jax.nn.one_hot(labels, num_classes)
    if smoothing:
        targets = optax.smooth_labels(targets, smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def train_step(state: TrainState, batch, rng, *, label_smoothing: float, ema_decay: float, schedule):
    dropout_rng = jax.random.fold_in(rng, state.step)

    def loss_fn(params):
        logits, new_vars = state.apply_fn({"params": params, "batch_stats": state.batch_stats}, batch["image"],
                                          train=True, mutable=["batch_stats"], rngs={"dropout": dropout_rng})
        loss = cross_entropy(logits, batch["label"], logits.shape[-1], label_smoothing).mean()
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


def eval_step(state: TrainState, batch, *, use_ema: bool, flip: bool = False):
    params = state.ema_params if use_ema else state.params
    stats = state.ema_batch_stats if use_ema else state.batch_stats
    apply = lambda x: state.apply_fn({"params": params, "batch_stats": stats}, x, train=False)  # noqa: E731
    logits = apply(batch["image"])
    if flip:  # test-time augmentation: mean of the logits of the image and its mirror image
        logits = 0.5 * (logits + apply(batch["image"][:, :, ::-1, :]))
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
        train = functools.partial(train_step, label_smoothing=config.optim.label_smoothing,
                                  ema_decay=config.optim.ema_decay, schedule=schedule)
        self.train = jax.jit(train, in_shardings=(self.repl, self.data, self.repl),
                             out_shardings=(self.repl, self.repl), donate_argnums=(0,))
        self.eval = jax.jit(functools.partial(eval_step, use_ema=self.use_ema, flip=bool(config.eval_flip)),
                            in_shardings=(self.repl, self.data), out_shardings=self.repl)

    def put_batch(self, batch: dict) -> dict:
        return jax.device_put(batch, self.data)


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


# ---------------------------------------------------------------------------------------------------------------------
# Workdir bookkeeping

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"
RESULTS_FILE = "results.json"


def _model_identity(config) -> dict:
    return {k: v for k, v in config.model.to_dict().items() if v is not None and k != "depthwise_impl"}


def check_workdir(config, workdir: str) -> None:
    """Refuse to mix runs: a workdir holding another model's run is only replaced with config.overwrite=True."""
    path = os.path.join(workdir, RUN_FILE)
    if not os.path.exists(path):
        return
    with open(path) as f:
        previous = json.load(f).get("model", {})
    current = _model_identity(config)
    if previous == current:
        return
    if not config.overwrite:
        raise WorkdirConflictError(
            f"workdir {workdir!r} holds a run of a different model ({previous}) than this config ({current}); "
            "use another --workdir, or pass --config.overwrite=True to delete that run and start over")
    for name in ("checkpoints", "best", "tensorboard"):
        shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
    for name in (RUN_FILE, CONFIG_FILE, RESULTS_FILE, "metrics.jsonl", "learning_curves.png"):
        if os.path.exists(os.path.join(workdir, name)):
            os.remove(os.path.join(workdir, name))


def _write_json(path: str, obj: Any) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=str)
        f.write("\n")
    os.replace(tmp, path)


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir!r} holds no training run (no {CONFIG_FILE}); train one with "
                                f"`mobilejax train --config ... --workdir {workdir}`")
    with open(path) as f:
        return config_lib.from_dict(json.load(f))


def validate_config(config) -> None:
    n = jax.device_count()
    for key in ("batch_size", "eval_batch_size"):
        v = config[key]
        if not isinstance(v, int) or v < 1 or v % n:
            raise ValueError(f"{key}={v!r} must be a positive multiple of the number of devices ({n})")
    if not (config.num_train_steps > 0 or config.num_epochs > 0):
        raise ValueError("set num_epochs > 0 or num_train_steps > 0")
    if config.dtype not in DTYPES:
        raise ValueError(f"unknown dtype {config.dtype!r}; allowed: {', '.join(DTYPES)}")


# ---------------------------------------------------------------------------------------------------------------------
# The training loop


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train `config` in `workdir` (resuming if it holds a checkpoint of the same model); returns results.json."""
    from mobilejax.data import get_datasets  # TensorFlow import kept out of model-only code paths
    from mobilejax.summary import summarize_module

    t_start = time.time()
    validate_config(config)
    os.makedirs(workdir, exist_ok=True)
    check_workdir(config, workdir)
    enable_compilation_cache()

    ds = get_datasets(config.data, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
                      seed=config.seed)
    model = build_model(config, ds.num_classes)
    summary = summarize_module(model, ds.image_size, config.model.name)
    spe = ds.steps_per_epoch
    total_steps = int(config.num_train_steps) if config.num_train_steps > 0 else int(math.ceil(config.num_epochs * spe))
    schedule = create_schedule(config.optim, spe, total_steps)
    tx = create_optimizer(config.optim, schedule)
    mesh = make_mesh()
    steps = Steps(config, schedule, mesh)
    rng = jax.random.key(config.seed)
    init_rng, dropout_rng = jax.random.split(rng)
    ema = bool(config.optim.ema_decay)
    init = jax.jit(lambda r: init_state(model, tx, r, ds.image_size, ema), out_shardings=steps.repl)

    ckpt = Checkpoints(workdir, config.keep_checkpoints)
    writer = MetricWriter(workdir)
    best = {"accuracy": None, "step": None}
    wall_before, start_step = 0.0, 0
    if ckpt.latest_step() is not None:
        state, meta = ckpt.restore(jax.eval_shape(init, init_rng), steps.repl)
        start_step = int(state.step)
        best, wall_before = meta["best"], float(meta["wall_time_s"])
        writer.truncate_after(start_step)
        print(f"Resuming from step {start_step} in {workdir}", flush=True)
    else:
        state = init(init_rng)
    state = state.replace(apply_fn=model.apply)

    _write_json(os.path.join(workdir, CONFIG_FILE), config.to_dict())
    _write_json(os.path.join(workdir, RUN_FILE), {"model": _model_identity(config), "class_names": ds.class_names,
                                                   "num_classes": ds.num_classes, "image_size": ds.image_size})

    eval_every = max(1, int(round(config.eval_every_epochs * spe)))
    log_every = max(1, int(config.log_every_steps))
    window: list = []
    window_t0, window_images = time.time(), 0
    train_time, train_images, compile_s = 0.0, 0, None
    last_eval = None
    pbar = None
    if config.progress:
        from tqdm.auto import tqdm
        pbar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True, desc=config.model.name)

    def meta(step_wall):
        return {"best": best, "wall_time_s": wall_before + step_wall, "step": int(jax.device_get(state.step))}

    def flush(step: int):
        """Fetch the window's metrics, stop on a non-finite loss, log means."""
        nonlocal window, window_t0, window_images, train_time, train_images
        if not window:
            return
        fetched = jax.device_get(window)
        dt = time.time() - window_t0
        losses = [float(m["loss"]) for m in fetched]
        bad = [i for i, l in enumerate(losses) if not math.isfinite(l)]
        if bad:
            first = step - len(losses) + bad[0] + 1
            last_good = ckpt.latest_step()
            where = (f"the last good checkpoint (step {last_good}) is in {os.path.join(workdir, 'checkpoints')}"
                     if last_good is not None else "no checkpoint had been saved yet")
            raise FloatingPointError(
                f"training loss became {losses[bad[0]]} at step {first} (learning rate "
                f"{float(fetched[bad[0]]['lr']):.4g}); training stopped and {where}. Try a lower "
                "optim.learning_rate, longer optim.warmup_epochs or optim.grad_clip_norm > 0")
        img_s = window_images / dt if dt > 0 else 0.0
        train_time += dt
        train_images += window_images
        scalars = {"train_loss": float(np.mean(losses)),
                   "train_accuracy": float(np.mean([m["accuracy"] for m in fetched])),
                   "lr": float(fetched[-1]["lr"]), "img_per_s": img_s, "epoch": step / spe}
        writer.write(step, scalars)
        if pbar is not None:
            pbar.set_postfix(loss=f"{scalars['train_loss']:.3f}", acc=f"{scalars['train_accuracy']:.3f}",
                             img_s=f"{img_s:.1f}", refresh=False)
        window = []

    try:
        batches = ds.train_batches(start_step) if start_step < total_steps else iter(())
        loop_t0 = time.time()
        for step in range(start_step + 1, total_steps + 1):
            batch = steps.put_batch(next(batches))
            t0 = time.time()
            state, m = steps.train(state, batch, dropout_rng)
            window.append(m)
            if compile_s is None:  # the first call compiles: keep it out of the throughput figures
                jax.block_until_ready(m)
                compile_s = time.time() - t0
                window_t0, window_images = time.time(), 0
            else:
                window_images += config.batch_size
            if pbar is not None:
                pbar.update(1)
            do_eval = step % eval_every == 0 or step == total_steps
            do_ckpt = step % config.checkpoint_every_steps == 0 or step == total_steps or do_eval
            if step % log_every == 0 or do_eval or do_ckpt:
                flush(step)
            if do_eval:
                t_eval = time.time()
                last_eval = evaluate_batches(steps, state, ds.eval_batches())
                writer.write(step, {"eval_accuracy": last_eval["accuracy"], "eval_loss": last_eval["loss"],
                                    "epoch": step / spe})
                if best["accuracy"] is None or last_eval["accuracy"] > best["accuracy"]:
                    best = {"accuracy": last_eval["accuracy"], "loss": last_eval["loss"], "step": step}
                    ckpt.save(step, state, meta(time.time() - loop_t0), which="best")
                if pbar is not None:
                    pbar.write(f"step {step} (epoch {step / spe:.2f}): eval accuracy {last_eval['accuracy']:.4f} "
                               f"loss {last_eval['loss']:.4f} ({last_eval['num_examples']} examples, "
                               f"{time.time() - t_eval:.1f}s)")
            if do_ckpt:
                ckpt.save(step, state, meta(time.time() - loop_t0))
                window_t0, window_images = time.time(), 0
        if last_eval is None:  # already finished: evaluate the final state again
            last_eval = evaluate_batches(steps, state, ds.eval_batches())
    finally:
        if pbar is not None:
            pbar.close()
        writer.close()
        ckpt.close()

    wall = wall_before + (time.time() - t_start)
    results = {
        "model": config.model.name, "alpha": summary.alpha, "dataset": config.data.dataset,
        "image_size": ds.image_size, "num_classes": ds.num_classes,
        "final_accuracy": last_eval["accuracy"], "final_loss": last_eval["loss"],
        "best_accuracy": best["accuracy"], "best_step": best["step"], "eval_examples": last_eval["num_examples"],
        "params": summary.params, "macs": summary.macs, "steps": total_steps, "epochs": total_steps / spe,
        "batch_size": config.batch_size, "wall_time_s": round(wall, 2),
        "compile_s": round(compile_s, 2) if compile_s is not None else None,
        "img_per_s": round(train_images / train_time, 2) if train_time > 0 else None,
        "devices": jax.device_count(), "backend": jax.default_backend(), "dtype": config.dtype,
    }
    _write_json(os.path.join(workdir, RESULTS_FILE), results)
    try:
        plot_learning_curves({config.model.name: read_metrics(workdir)}, os.path.join(workdir, "learning_curves.png"),
                             title=f"{config.model.name} on {config.data.dataset}")
    except Exception as e:  # a plot must never lose a finished run
        print(f"warning: could not plot learning curves: {e}")
    return results


# ---------------------------------------------------------------------------------------------------------------------
# Evaluation and prediction from a workdir


def _restore_for_inference(config, workdir: str, checkpoint: str, num_classes: int, image_size: int):
    model = build_model(config, num_classes)
    schedule = create_schedule(config.optim, 1, 1)
    tx = create_optimizer(config.optim, schedule)
    mesh = make_mesh()
    steps = Steps(config, schedule, mesh)
    abstract = jax.eval_shape(
        lambda r: init_state(model, tx, r, image_size, bool(config.optim.ema_decay)), jax.random.key(0))
    ckpt = Checkpoints(workdir, config.keep_checkpoints)
    try:
        which = checkpoint
        if ckpt.latest_step(which) is None:
            raise FileNotFoundError(f"no {which} checkpoint in {workdir}")
        state, meta = ckpt.restore(abstract, steps.repl, which=which)
    finally:
        ckpt.close()
    state = jax.device_put(state, steps.repl).replace(apply_fn=model.apply)
    return model, steps, state, meta


def evaluate(config: ml_collections.ConfigDict, workdir: str, checkpoint: str = "best") -> dict:
    """Evaluate a workdir's checkpoint on `config.data.eval_split` (of `config.data.dataset`); every example once."""
    from mobilejax.data import get_datasets

    with open(os.path.join(workdir, RUN_FILE)) as f:
        run = json.load(f)
    ds = get_datasets(config.data, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
                      seed=config.seed)
    if ds.num_classes != run["num_classes"]:
        raise ValueError(f"{config.data.dataset!r} has {ds.num_classes} classes but the model in {workdir} was "
                         f"trained on {run['num_classes']}")
    _, steps, state, meta = _restore_for_inference(config, workdir, checkpoint, run["num_classes"], ds.image_size)
    out = evaluate_batches(steps, state, ds.eval_batches())
    out.update({"checkpoint": checkpoint, "step": int(meta["step"]), "dataset": config.data.dataset,
                "split": config.data.eval_split})
    return out


def predict(config: ml_collections.ConfigDict, workdir: str, paths: list[str], top_k: int = 5,
            checkpoint: str = "best") -> list[dict]:
    """Top-k classes (names and probabilities) for each image file."""
    from mobilejax.data import load_image_for_predict

    with open(os.path.join(workdir, RUN_FILE)) as f:
        run = json.load(f)
    for p in paths:
        if not os.path.isfile(p):
            raise FileNotFoundError(f"image file {p!r} does not exist")
    model, steps, state, _ = _restore_for_inference(config, workdir, checkpoint, run["num_classes"],
                                                    run["image_size"])
    images = np.stack([load_image_for_predict(p, config.data) for p in paths])
    params = state.ema_params if steps.use_ema else state.params
    stats = state.ema_batch_stats if steps.use_ema else state.batch_stats
    logits = jax.jit(lambda x: model.apply({"params": params, "batch_stats": stats}, x, train=False))(images)
    probs = np.asarray(jax.nn.softmax(logits, axis=-1))
    names = run["class_names"]
    k = min(top_k, probs.shape[-1])
    out = []
    for p, row in zip(paths, probs):
        idx = np.argsort(-row)[:k]
        out.append({"image": p, "top": [{"class": names[i], "index": int(i), "probability": float(row[i])}
                                        for i in idx]})
    return out
