"""Images per second the in-memory pipeline makes (data.pipeline='memory'), alone, with and without TrivialAugment.

usage: python scripts/memory_pipeline_rate.py CONFIG[:ARGS] [--batch 512] [--batches 40] [--reps 3]

Builds the config's data sets with data.pipeline='memory', decodes the training split once, then times `--batches`
training batches from the background thread, alternating data.auto_augment='none' and 'trivial' (A B A B ...), and
prints one JSON line per run and the medians. The question it answers: does the host keep up with an accelerator's
train step (one H200 trains MobileNetV2 on CIFAR-10 at ~35-40k img/s)? Example:

    python scripts/memory_pipeline_rate.py configs/cifar10.py:folder=../shared/data/cifar10 --batch 512
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mobilejax.config import load_config  # noqa: E402
from mobilejax.data import get_datasets  # noqa: E402


def rate(config, auto_augment: str, batch: int, batches: int) -> float:
    config.data.pipeline, config.data.auto_augment = "memory", auto_augment
    ds = get_datasets(config.data, batch_size=batch, eval_batch_size=batch, seed=0)
    it = ds.train_batches(0)
    next(it)  # the decode of the split and the thread's start
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    runs = {"none": [], "trivial": []}
    for rep in range(a.reps):
        for auto_augment in runs:
            img_per_s = rate(load_config([f"--config={a.config}"]), auto_augment, a.batch, a.batches)
            runs[auto_augment].append(img_per_s)
            print(json.dumps({"rep": rep, "auto_augment": auto_augment, "batch": a.batch, "img_per_s": round(img_per_s),
                              "cpus": os.cpu_count()}), flush=True)
    print(json.dumps({k: round(statistics.median(v)) for k, v in runs.items()}))


if __name__ == "__main__":
    main()
