"""Time a jit-compiled train step (forward + backward + SGD-momentum update, BatchNorm batch_stats) on this machine.

usage: python scripts/profile_step.py [MODEL ...] [--resolution 224] [--batch 32] [--steps 6] [--warmup 2]
                                      [--depthwise-impl auto|xla|shift] [--repeat 1] [--json]
MODEL: any registry name (default: mobilenet_v2 mobilenet_v3_large shufflenet_v2).

Prints, per model, compile time and the median img/s over `--steps` timed steps (after `--warmup` steps), one line
each (JSON with --json). Same shapes as the peers in /work/shared/bench (10 classes, random data, SGD 0.01 / 0.9).
`--repeat N` times the steps N times over in one process (e.g. to alternate with a peer from a shell loop instead).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from mobilejax.models import create_model  # noqa: E402

DEFAULT_MODELS = ("mobilenet_v2", "mobilenet_v3_large", "shufflenet_v2")


def make_step(model, tx):
    def loss_fn(params, batch_stats, x, y, key):
        logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                      mutable=["batch_stats"], rngs={"dropout": key})
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, updates["batch_stats"]

    @jax.jit
    def step(params, batch_stats, opt_state, x, y, key):
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch_stats, x, y, key)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, batch_stats, opt_state, loss

    return step


def profile(name: str, resolution: int, batch: int, steps: int, warmup: int, impl: str, num_classes: int = 10,
            repeat: int = 1) -> list[dict]:
    model = create_model(name, num_classes=num_classes, depthwise_impl=impl)
    key = jax.random.PRNGKey(0)
    x = jax.random.uniform(key, (batch, resolution, resolution, 3), jnp.float32)
    y = jax.random.randint(jax.random.PRNGKey(1), (batch,), 0, num_classes)
    variables = jax.jit(lambda k: model.init(k, x[:1], train=False))(key)
    params, batch_stats = variables["params"], variables["batch_stats"]
    tx = optax.sgd(0.01, momentum=0.9)
    opt_state = tx.init(params)
    step = make_step(model, tx)

    t0 = time.perf_counter()
    compiled = step.lower(params, batch_stats, opt_state, x, y, key).compile()
    compile_s = time.perf_counter() - t0

    state = (params, batch_stats, opt_state)
    for i in range(warmup):
        *state, loss = compiled(*state, x, y, jax.random.fold_in(key, i))
        jax.block_until_ready(loss)
    results = []
    for r in range(repeat):
        times = []
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        for i in range(steps):
            t = time.perf_counter()
            *state, loss = compiled(*state, x, y, jax.random.fold_in(key, 1000 + i))
            jax.block_until_ready(loss)
            times.append(time.perf_counter() - t)
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        med = statistics.median(times)
        results.append({"model": name, "depthwise_impl": impl, "resolution": resolution, "batch": batch,
                        "img_per_s": round(batch / med, 2), "median_step_s": round(med, 4),
                        "min_step_s": round(min(times), 4), "compile_s": round(compile_s, 1),
                        "sys_s_per_step": round((ru1.ru_stime - ru0.ru_stime) / steps, 3),
                        "user_s_per_step": round((ru1.ru_utime - ru0.ru_utime) / steps, 3),
                        "minflt_per_step": (ru1.ru_minflt - ru0.ru_minflt) // steps,
                        "loss": float(loss), "jax": jax.__version__, "backend": jax.default_backend()})
    return results


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", default=list(DEFAULT_MODELS))
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--depthwise-impl", default="auto")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    for name in a.models:
        for res in profile(name, a.resolution, a.batch, a.steps, a.warmup, a.depthwise_impl, a.num_classes, a.repeat):
            if a.json:
                print(json.dumps(res), flush=True)
            else:
                print(f"{res['model']:>20} dw={res['depthwise_impl']:<5} {res['resolution']}px b{res['batch']}: "
                      f"{res['img_per_s']:7.2f} img/s (median step {res['median_step_s']*1e3:.0f} ms, "
                      f"min {res['min_step_s']*1e3:.0f} ms; user {res['user_s_per_step']:.2f} s, sys {res['sys_s_per_step']:.2f} s, "
                      f"{res['minflt_per_step']} page faults per step), compile {res['compile_s']:.1f} s", flush=True)


if __name__ == "__main__":
    main()
