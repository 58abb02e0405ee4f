"""Evaluation and prediction from a trained workdir (`mobilejax eval`, `mobilejax predict`)."""
from __future__ import annotations

import os
import sys

import jax
import ml_collections
import numpy as np

from mobilejax import workdir as workdir_lib
from mobilejax.checkpoint import Checkpoints
from mobilejax.errors import UsageError
from mobilejax.train.program import get_program
from mobilejax.train.steps import evaluate_batches

CHECKPOINTS = ("best", "latest")


def restore(config, workdir: str, checkpoint: str, num_classes: int, image_size: int):
    """(model, steps, state, meta) of a workdir's `checkpoint` ("best" or "latest") for inference."""
    if checkpoint not in CHECKPOINTS:
        raise UsageError(f"unknown checkpoint {checkpoint!r}; allowed: {', '.join(CHECKPOINTS)}")
    program = get_program(config, num_classes, image_size)
    model, steps = program.model, program.steps
    ckpt = Checkpoints(workdir, config.keep_checkpoints)
    try:
        if ckpt.latest_step(checkpoint) is None:
            hint = ("; the run has no evaluation yet (interrupted early?): use --checkpoint latest"
                    if checkpoint == "best" and ckpt.latest_step("latest") is not None else "")
            raise UsageError(f"no {checkpoint} checkpoint in {workdir}{hint}")
        state, meta = ckpt.restore(program.abstract_state(), steps.repl, which=checkpoint)
    finally:
        ckpt.close()
    return model, steps, state.replace(apply_fn=model.apply), meta


def evaluate(config: ml_collections.ConfigDict, workdir: str, checkpoint: str = "best") -> dict:
    """Evaluate a workdir's checkpoint on `config.data.eval_split` (of `config.data.dataset`); every example once.
    Only the evaluation split is opened, so a dataset with a test split alone works."""
    from mobilejax.data import get_datasets

    run = workdir_lib.load_run(workdir)
    ds = get_datasets(config.data, batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
                      seed=config.seed, train=False)
    different = workdir_lib.class_difference(ds.class_names, run["class_names"])
    if different:
        raise UsageError(f"the classes of {config.data.dataset!r} are not those the model in {workdir} was trained "
                         f"on: {different}")
    _, steps, state, meta = restore(config, workdir, checkpoint, run["num_classes"], ds.image_size)
    out = evaluate_batches(steps, state, ds.eval_batches())
    out.update({"checkpoint": checkpoint, "step": int(meta["step"]), "dataset": config.data.dataset,
                "split": config.data.eval_split})
    overlap = _overlap_with_training(config, workdir, run, ds)
    if overlap is not None:
        out["eval_overlap"] = overlap
    return out


def _overlap_with_training(config, workdir: str, run: dict, ds) -> int | None:
    """How many of the evaluated examples the run trained on (said on stderr when not 0); None where that is not
    known: a converted model, or data other than the run's (another dataset or training split)."""
    saved = workdir_lib.load_config(workdir).data
    if "train_examples" not in run or (config.data.dataset, config.data.train_split) != (saved.dataset,
                                                                                           saved.train_split):
        return None
    not_held_out = ds.overlap_warning()
    if not_held_out:
        print(f"mobilejax: warning: {not_held_out}", file=sys.stderr, flush=True)
    return ds.eval_overlap


def predict(config: ml_collections.ConfigDict, workdir: str, paths: list[str], top_k: int = 5,
            checkpoint: str = "best") -> list[dict]:
    """Top-k classes (names and probabilities) for each image file."""
    from mobilejax.data import load_image_for_predict

    run = workdir_lib.load_run(workdir)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise UsageError(f"--top-k={top_k!r} is invalid; allowed: an integer >= 1 (more than the "
                         f"{run['num_classes']} classes lists them all)")
    for p in paths:
        if os.path.isdir(p):
            raise UsageError(f"{p!r} is a directory; give the image files (e.g. {os.path.join(p, '*.jpg')})")
        if not os.path.isfile(p):
            raise UsageError(f"image file {p!r} does not exist")
    model, steps, state, _ = restore(config, workdir, checkpoint, run["num_classes"], run["image_size"])
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
