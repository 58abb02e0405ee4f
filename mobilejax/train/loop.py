"""`train_and_evaluate(config, workdir)`: the training loop, resumable from the latest checkpoint.

A rerun with the same workdir resumes from the latest checkpoint (step, optimizer, data order and RNG) and continues
bit-identically. SIGINT/SIGTERM stop it after the current step with a checkpoint (exit 130/143); rerunning the same
command resumes. A finished run is not trained or evaluated again: its results are returned as they are.

Multi-process (after `mobilejax.distributed.initialize`): every process runs this same function on its share of each
batch; checkpoints are written and restored by all of them together (orbax), everything else (metrics, TensorBoard,
run.json, results.json, plots, the progress bar) by process 0 only. A stop request on any process stops them all at
the next log step.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import sys
import time

import jax
import ml_collections
import numpy as np

from mobilejax import distributed
from mobilejax import workdir as workdir_lib
from mobilejax.checkpoint import Checkpoints
from mobilejax.errors import TrainingStopped
from mobilejax.metrics import MetricWriter, plot_learning_curves, read_metrics
from mobilejax.runtime import StopRequest, enable_compilation_cache, malloc_in_use, untuned_malloc_note
from mobilejax.train import pretrained, resizing
from mobilejax.train.program import Program, get_program
from mobilejax.train.state import validate_config
from mobilejax.train.steps import Steps, evaluate_batches


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Train `config` in `workdir` (resuming if it holds a checkpoint of the same run); returns results.json."""
    from mobilejax.data import get_datasets  # TensorFlow import kept out of model-only code paths

    t_start = time.time()
    validate_config(config)                     # everything is validated before anything is written
    pretrained.check_init_from(config, workdir)
    ds = get_datasets(config.data, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
                      seed=config.seed, process=(jax.process_index(), jax.process_count()))
    ds.check_classes()
    not_held_out = ds.overlap_warning()
    if distributed.is_primary():
        if not_held_out:
            print(f"mobilejax: warning: {not_held_out}", file=sys.stderr, flush=True)
        _note_untuned_malloc()
    plan = Plan.create(config, ds.steps_per_epoch)
    program = get_program(config, ds.num_classes, ds.image_size, plan.steps_per_epoch, plan.total_steps)
    steps = program.steps
    workdir_lib.prepare(workdir)
    primary = distributed.is_primary()
    with workdir_lib.hold(workdir) if primary else contextlib.nullcontext():  # one `train` per workdir
        accepted = workdir_lib.check_resume(config, workdir, ds.class_names, ds.num_train_examples)
        enable_compilation_cache()

        ckpt = Checkpoints(workdir, config.keep_checkpoints)
        try:
            state, meta = _restore_or_init(config, program, ckpt, workdir)
            if meta["step"] >= plan.total_steps and os.path.exists(os.path.join(workdir, workdir_lib.RESULTS_FILE)):
                print(f"mobilejax: {workdir} holds a finished run; its results are unchanged", file=sys.stderr)
                return workdir_lib.read_json(os.path.join(workdir, workdir_lib.RESULTS_FILE))
            if primary:
                workdir_lib.record_run(workdir, config, class_names=ds.class_names, image_size=ds.image_size,
                                       step=meta["step"], accepted=accepted, train_examples=ds.num_train_examples)
            log = TrainLog(MetricWriter(workdir, meta["step"]) if primary else None, plan, config, ckpt, workdir,
                           meta["step"])
            with StopRequest() as stop:
                state, last_eval = _train(config, plan, steps, state, meta, ds, ckpt, log, stop, t_start)
        finally:
            ckpt.close()
        results = _write_results(config, workdir, program, ds, plan, meta, last_eval, log, time.time() - t_start)
        if stop.requested:  # the signal came during the last step or its evaluation: everything is written
            raise TrainingStopped(f"stopped at step {plan.total_steps}, the last one; results are written",
                                  stop.exit_code)
        return results


@dataclasses.dataclass(frozen=True)
class Plan:
    """How long the run is and how often it logs, evaluates and checkpoints, in steps."""
    steps_per_epoch: int
    total_steps: int
    eval_every: int
    log_every: int
    checkpoint_every: int

    @classmethod
    def create(cls, config, steps_per_epoch: int) -> "Plan":
        total = (int(config.num_train_steps) if config.num_train_steps > 0
                 else int(math.ceil(config.num_epochs * steps_per_epoch)))
        return cls(steps_per_epoch, total, max(1, int(round(config.eval_every_epochs * steps_per_epoch))),
                   max(1, int(config.log_every_steps)), max(1, int(config.checkpoint_every_steps)))

    def is_eval(self, step: int) -> bool:
        return step % self.eval_every == 0 or step == self.total_steps

    def is_checkpoint(self, step: int) -> bool:
        return step % self.checkpoint_every == 0 or self.is_eval(step)


def _restore_or_init(config, program: Program, ckpt: Checkpoints, workdir: str):
    """The state and bookkeeping (`step`, `best`, `wall_time_s`) of the latest checkpoint, or a fresh state."""
    repl = program.steps.repl
    if ckpt.latest_step() is None:
        state = program.init(jax.random.split(jax.random.key(config.seed))[0])
        if config.init_from:  # fine-tuning: the pretrained tensors replace the random ones
            state = pretrained.init_from(state, config.init_from, config.init_checkpoint, repl)
        return state, {"step": 0, "best": {"accuracy": None, "step": None}, "wall_time_s": 0.0}
    state, meta = ckpt.restore(program.abstract_state(), repl)
    meta = {**meta, "step": int(state.step)}
    print(f"mobilejax: resuming from step {meta['step']} in {workdir}", file=sys.stderr, flush=True)
    return state.replace(apply_fn=program.model.apply), meta


def _train(config, plan: Plan, steps: Steps, state, meta: dict, ds, ckpt: Checkpoints, log: "TrainLog",
           stop: StopRequest, t_start: float):
    """Steps `meta["step"] + 1 .. total_steps`: train, log, evaluate (keeping the best), checkpoint, stop on request."""
    dropout_rng = jax.random.split(jax.random.key(config.seed))[1]
    wall_before, last_eval = float(meta["wall_time_s"]), None
    batches = ds.train_batches(meta["step"]) if meta["step"] < plan.total_steps else iter(())
    multi = jax.process_count() > 1  # then a stop request counts once all processes agree on it (at log steps)
    agreed = False

    def stopping() -> bool:
        return agreed if multi else stop.requested
    try:
        for step in range(meta["step"] + 1, plan.total_steps + 1):
            t_wait = time.time()
            host_batch = next(batches)  # waits only when the input pipeline is behind the step
            t0 = time.time()
            batch = steps.put_batch(host_batch)
            size = resizing.size_at(config.data, ds.image_size, (step - 1) // plan.steps_per_epoch)
            state, metrics = steps.train_at(size, ds.image_size)(state, batch, dropout_rng)
            log.add(metrics, t0, size, input_wait_s=t0 - t_wait)
            if multi and (step % plan.log_every == 0 or plan.is_checkpoint(step)):
                agreed = stop.agree()  # every process stops at the same step
            if step % plan.log_every == 0 or plan.is_checkpoint(step) or stopping():
                log.flush(step)
            meta.update(step=step, wall_time_s=wall_before + time.time() - t_start)
            if plan.is_eval(step):
                last_eval = evaluate_batches(steps, state, ds.eval_batches())
                if log.evaluated(step, last_eval, meta["best"]):
                    meta["best"] = {"accuracy": last_eval["accuracy"], "loss": last_eval["loss"], "step": step}
                    ckpt.save(step, state, meta, which="best")
            if plan.is_checkpoint(step) or stopping():
                ckpt.save(step, state, meta)
                log.restart_clock()
            if stopping() and step < plan.total_steps:
                raise TrainingStopped(f"stopped at step {step}; checkpoint saved; rerun the same command to resume",
                                      stop.exit_code)
        if last_eval is None:  # trained to the end earlier, but the results were never written
            last_eval = evaluate_batches(steps, state, ds.eval_batches())
        meta["wall_time_s"] = wall_before + time.time() - t_start
    finally:
        log.close()
    return state, last_eval


class TrainLog:
    """Metrics of the steps since the last log line: fetched together (the device runs ahead meanwhile), checked for
    a non-finite loss, written as means with the throughput; also the progress bar and the compile time.

    `input_wait_frac`: the share of the window's time the loop spent waiting for the next batch from the input
    pipeline. Near 0 the run is compute-bound (the pipeline's prefetch is ahead of the step); a large share means the
    input pipeline is what limits img/s (more `data.num_parallel_calls`, `data.pipeline='memory'` for small images,
    or a lighter augmentation).

    JAX dispatches asynchronously, so unchecked the host would queue a whole log window of steps ahead of the device,
    and a stop request (which waits for the queued steps before its checkpoint) would take up to `log_every_steps`
    steps: minutes on a slow CPU. `add` keeps the host at most `AHEAD` steps ahead: enough to keep the device busy,
    few enough that a stop takes at most that many more steps."""

    AHEAD = 2

    def __init__(self, writer: MetricWriter | None, plan: Plan, config, ckpt: Checkpoints, workdir: str,
                 start_step: int):
        """`writer` None: log nothing (the processes of a multi-process run other than process 0)."""
        self.writer, self.plan, self.ckpt, self.workdir = writer, plan, ckpt, workdir
        self.batch_size = config.batch_size
        self.window: list = []
        self.window_t0, self.window_images, self.window_wait = time.time(), 0, 0.0
        self.train_time, self.train_images, self.train_wait, self.compile_s = 0.0, 0, 0.0, None
        self.progressive = bool((config.get("data") or {}).get("progressive_size", 0))
        self.image_size = None  # of the last step (logged with progressive resizing)
        self.pbar = None
        if config.progress and writer is not None:
            from tqdm.auto import tqdm
            self.pbar = tqdm(total=plan.total_steps, initial=start_step, unit="step", dynamic_ncols=True, desc=config.model.name,
                             file=sys.stderr)

    def add(self, metrics: dict, t_call: float, image_size: int | None = None, input_wait_s: float = 0.0) -> None:
        """`t_call`: when the step was called; `input_wait_s`: how long its batch was waited for before that."""
        self.window.append(metrics)
        self.image_size = image_size
        if self.compile_s is None:  # the first call compiles: keep it out of the throughput figures
            jax.block_until_ready(metrics)
            self.compile_s = time.time() - t_call
            self.restart_clock()
        else:
            self.window_images += self.batch_size
            self.window_wait += input_wait_s
            if len(self.window) > self.AHEAD:
                jax.block_until_ready(self.window[-1 - self.AHEAD])
        if self.pbar is not None:
            self.pbar.update(1)

    def restart_clock(self) -> None:
        self.window_t0, self.window_images, self.window_wait = time.time(), 0, 0.0

    def flush(self, step: int) -> None:
        if not self.window:
            return
        fetched = jax.device_get(self.window)
        dt = time.time() - self.window_t0
        losses = [float(m["loss"]) for m in fetched]
        bad = [i for i, loss in enumerate(losses) if not math.isfinite(loss)]
        if bad:
            first = step - len(losses) + bad[0] + 1
            last_good = self.ckpt.latest_step()
            where = (f"the last good checkpoint (step {last_good}) is in {os.path.join(self.workdir, 'checkpoints')}"
                     if last_good is not None else "no checkpoint had been saved yet")
            raise FloatingPointError(
                f"training loss became {losses[bad[0]]} at step {first} (learning rate "
                f"{float(fetched[bad[0]]['lr']):.4g}); training stopped and {where}. Try a lower "
                "optim.learning_rate, longer optim.warmup_epochs or optim.grad_clip_norm > 0")
        img_s = self.window_images / dt if dt > 0 else 0.0
        self.train_time += dt
        self.train_images += self.window_images
        self.train_wait += self.window_wait
        scalars = {"train_loss": float(np.mean(losses)),
                   "train_accuracy": float(np.mean([m["accuracy"] for m in fetched])),
                   "lr": float(fetched[-1]["lr"]), "img_per_s": img_s,
                   "input_wait_frac": min(self.window_wait / dt, 1.0) if dt > 0 else 0.0,
                   "epoch": step / self.plan.steps_per_epoch}
        if self.progressive:
            scalars["train_image_size"] = self.image_size
        if self.writer is not None:
            self.writer.write(step, scalars)
        if self.pbar is not None:
            self.pbar.set_postfix(loss=f"{scalars['train_loss']:.3f}", acc=f"{scalars['train_accuracy']:.3f}",
                                  img_s=f"{img_s:.1f}", refresh=False)
        self.window = []
        self.restart_clock()

    def evaluated(self, step: int, result: dict, best: dict) -> bool:
        """Log an evaluation; True if it is the best so far."""
        epoch = step / self.plan.steps_per_epoch
        if self.writer is not None:
            self.writer.write(step, {"eval_accuracy": result["accuracy"], "eval_loss": result["loss"], "epoch": epoch})
        msg = (f"step {step} (epoch {epoch:.2f}): eval accuracy {result['accuracy']:.4f} loss {result['loss']:.4f} "
               f"({result['num_examples']} examples)")
        if self.pbar is not None:
            self.pbar.write(msg, file=sys.stderr)
        self.restart_clock()
        return best["accuracy"] is None or result["accuracy"] > best["accuracy"]

    @property
    def img_per_s(self) -> float | None:
        return round(self.train_images / self.train_time, 2) if self.train_time > 0 else None

    @property
    def input_wait_frac(self) -> float | None:
        return round(min(self.train_wait / self.train_time, 1.0), 4) if self.train_time > 0 else None

    def close(self) -> None:
        if self.pbar is not None:
            self.pbar.close()
        if self.writer is not None:
            self.writer.close()


@functools.cache  # once per process
def _note_untuned_malloc() -> None:
    """On CPU, one line when this process lacks the allocator settings of the `mobilejax` command."""
    note = untuned_malloc_note() if jax.default_backend() == "cpu" else None
    if note:
        print(f"mobilejax: note: {note}", file=sys.stderr, flush=True)


def _write_results(config, workdir: str, program: Program, ds, plan: Plan, meta: dict, last_eval: dict,
                   log: TrainLog, session_s: float) -> dict:
    summary = program.summary
    results = {
        "model": config.model.name, "alpha": summary.alpha, "dataset": config.data.dataset,
        "image_size": ds.image_size, "eval_image_size": ds.eval_image_size, "num_classes": ds.num_classes,
        "final_accuracy": last_eval["accuracy"], "final_loss": last_eval["loss"],
        "best_accuracy": meta["best"]["accuracy"], "best_step": meta["best"]["step"],
        "eval_examples": last_eval["num_examples"], "params": summary.params, "macs": summary.macs,
        "steps": plan.total_steps, "epochs": plan.total_steps / plan.steps_per_epoch,
        "batch_size": config.batch_size, "wall_time_s": round(float(meta["wall_time_s"]), 2),
        "session_time_s": round(session_s, 2),
        "compile_s": round(log.compile_s, 2) if log.compile_s is not None else None, "img_per_s": log.img_per_s,
        "input_wait_frac": log.input_wait_frac, "eval_overlap": ds.eval_overlap, "devices": jax.device_count(),
        "backend": jax.default_backend(), "malloc": malloc_in_use(),
        "dtype": config.dtype,
    }
    if jax.process_count() > 1:
        results["processes"] = jax.process_count()
    if not distributed.is_primary():
        return results
    workdir_lib.write_json(os.path.join(workdir, workdir_lib.RESULTS_FILE), results)
    try:
        plot_learning_curves({config.model.name: read_metrics(workdir)},
                             os.path.join(workdir, workdir_lib.CURVES_FILE),
                             title=f"{config.model.name} on {config.data.dataset}")
    except Exception as e:  # noqa: BLE001  (a plot must never lose a finished run)
        print(f"mobilejax: warning: could not plot learning curves: {e}", file=sys.stderr)
    return results
