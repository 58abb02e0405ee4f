"""A run's program: the model, learning-rate schedule, optimizer and jit-compiled steps that its config and its data
shapes define, built once per process for each distinct setting.

Each `train_and_evaluate` used to build new closures (schedule, optimizer, steps), so JAX traced, lowered and loaded
the same train and eval steps again for every run in a process: seconds per run for the small models, most of a short
run's fixed cost. `get_program` keeps the last `CACHE_SIZE` programs, keyed by every setting that reaches the
compiled code (`program_key`), so the seeds of an in-process sweep, a resumed run or a rerun in a notebook reuse the
traced and compiled steps. Settings outside the key (seed, data paths and splits, how often to log, evaluate and
checkpoint) change what the steps are fed, never what they compute.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import json
import threading
from typing import Any

import jax
import ml_collections

from mobilejax.optim import create_optimizer, create_schedule, schedule_numbers
from mobilejax.train.state import build_model, eval_views, init_state, make_mesh
from mobilejax.train.steps import Steps

CACHE_SIZE = 4


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    model: Any
    schedule: Any
    tx: Any
    steps: Steps
    init: Any             # jitted: rng -> a fresh TrainState, replicated over the mesh
    image_size: int
    name: str             # config.model.name

    def abstract_state(self):
        """The shapes and dtypes of the TrainState (nothing computed): the target of a checkpoint restore."""
        return jax.eval_shape(self.init, jax.random.key(0))

    @functools.cached_property
    def summary(self):
        """Parameters and MACs of the model at the program's image size (mobilejax.summary)."""
        from mobilejax.summary import summarize_module
        return summarize_module(self.model, self.image_size, self.name)


def program_key(config: ml_collections.ConfigDict, num_classes: int, image_size: int, steps_per_epoch: int,
                total_steps: int) -> str:
    """Everything a run's compiled code depends on, as one string: the model, optimizer, fine-tuning, dtype and
    batch-mixing settings, the evaluation views, the shapes, the schedule's numbers (`optim.schedule_numbers`: the
    run's length only where the schedule uses it) and the devices."""
    finetune = config.get("finetune")
    return json.dumps({
        "model": config.model.to_dict(), "optim": config.optim.to_dict(),
        "finetune": finetune.to_dict() if finetune is not None else None, "dtype": config.dtype,
        "mixing": [float(config.data.mixup_alpha), float(config.data.cutmix_alpha)], "eval_views": eval_views(config),
        "num_classes": int(num_classes), "image_size": int(image_size),
        "schedule": schedule_numbers(config.optim, steps_per_epoch, total_steps),
        "devices": [[d.process_index, d.id, d.platform] for d in make_mesh().devices.flat],
    }, sort_keys=True, default=repr)


_CACHE: collections.OrderedDict[str, Program] = collections.OrderedDict()
_LOCK = threading.Lock()


def get_program(config: ml_collections.ConfigDict, num_classes: int, image_size: int, steps_per_epoch: int = 1,
                total_steps: int = 1) -> Program:
    """The program of `config` on data of `num_classes` classes at `image_size` px, with a schedule of
    `total_steps` steps of which an epoch is `steps_per_epoch`: the cached one if this process built it already."""
    key = program_key(config, num_classes, image_size, steps_per_epoch, total_steps)
    with _LOCK:
        program = _CACHE.get(key)
        if program is not None:
            _CACHE.move_to_end(key)
            return program
    program = build_program(config, num_classes, image_size, steps_per_epoch, total_steps)
    with _LOCK:
        _CACHE[key] = program
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return program


def build_program(config, num_classes: int, image_size: int, steps_per_epoch: int, total_steps: int) -> Program:
    """A new program (uncached)."""
    model = build_model(config, num_classes)
    schedule = create_schedule(config.optim, steps_per_epoch, total_steps)
    tx = create_optimizer(config.optim, schedule, config.get("finetune"))
    steps = Steps(config, schedule, make_mesh())
    ema = bool(config.optim.ema_decay)
    init = jax.jit(lambda rng: init_state(model, tx, rng, image_size, ema), out_shardings=steps.repl)
    return Program(model, schedule, tx, steps, init, int(image_size), config.model.name)


def clear_cache() -> None:
    """Forget the cached programs (and with them their compiled code)."""
    with _LOCK:
        _CACHE.clear()
