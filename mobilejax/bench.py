"""Throughput benchmark: the real jit-compiled train step (or inference) of a model on synthetic data.

    mobilejax bench mobilenet_v2 --resolution 224 --batch 32 --mode train [--json]

Times `mobilejax.train`'s own train step (forward, backward, BatchNorm statistics, SGD-momentum update, donated
state) — the step every training run executes — after warm-up, and reports the median images/s over `--steps`
steps, the compile time of the first call and peak memory. Same shapes and optimizer as ../shared/bench's peers.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import time

import jax
import numpy as np

from mobilejax import config as config_lib
from mobilejax.errors import UsageError
from mobilejax.ops import depthwise as depthwise_ops
from mobilejax.runtime import enable_compilation_cache, malloc_in_use
from mobilejax.train import Steps, build_model, init_state, make_mesh


def _peak_memory_mb() -> dict:
    out = {"host_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    try:
        stats = jax.devices()[0].memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            out["device_peak_mb"] = round(stats["peak_bytes_in_use"] / 2 ** 20, 1)
    except Exception:  # backends without memory stats
        pass
    return out


def _xla_cost(compiled) -> dict:
    """XLA's own count of one call's arithmetic and memory traffic (bytes read + written by every fused kernel,
    caches ignored): the basis of the memory-roofline floor, bytes over the device's bandwidth."""
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return {"xla_gflop": float(f"{float(cost['flops']) / 1e9:.4g}"),
                "xla_gb_accessed": float(f"{float(cost['bytes accessed']) / 1e9:.4g}")}
    except Exception:  # not every backend reports it
        return {}


def _temp_memory_mb(compiled) -> dict:
    try:
        mem = compiled.memory_analysis()
        return {"xla_temp_mb": round(mem.temp_size_in_bytes / 2 ** 20, 1)}
    except Exception:  # not every backend reports it
        return {}


def benchmark_config(model: str, alpha: float = 1.0, batch: int = 32, dtype: str = "float32",
                     depthwise_impl: str = "auto", options: dict | None = None):
    """The config of the benchmarked train step: plain SGD at a constant learning rate (no decay, smoothing or
    warm-up), so the step is the model's forward and backward plus one cheap update."""
    config = config_lib.get_config()
    config.model = config_lib.model_config(model, alpha=alpha, depthwise_impl=depthwise_impl, **(options or {}))
    config.dtype = dtype
    config.batch_size = batch
    config.optim.optimizer, config.optim.learning_rate, config.optim.nesterov = "sgd", 0.01, False
    config.optim.weight_decay, config.optim.label_smoothing, config.optim.warmup_epochs = 0.0, 0.0, 0.0
    config.optim.schedule = "constant"
    return config


def run_benchmark(model: str, alpha: float = 1.0, resolution: int = 224, batch: int = 32, mode: str = "train",
                  steps: int = 10, num_classes: int = 10, dtype: str = "float32", depthwise_impl: str = "auto",
                  warmup: int = 2, compilation_cache: bool = True, options: dict | None = None) -> dict:
    """`options`: further model knobs, e.g. {"small_input": True} for the CIFAR stem."""
    if mode not in ("train", "infer"):
        raise UsageError(f"unknown mode {mode!r}; allowed: train, infer")
    if steps < 1 or batch < 1:
        raise UsageError(f"steps and batch must be >= 1, got steps={steps}, batch={batch}")
    if compilation_cache:
        enable_compilation_cache()
    config = benchmark_config(model, alpha, batch, dtype, depthwise_impl, options)
    net = build_model(config, num_classes)
    net.check_input(jax.ShapeDtypeStruct((batch, resolution, resolution, 3), np.float32))  # one line, not a trace
    from mobilejax.optim import create_optimizer, create_schedule
    schedule = create_schedule(config.optim, 1, 1)
    tx = create_optimizer(config.optim, schedule)
    steps_fn = Steps(config, schedule, make_mesh())
    state = jax.jit(lambda r: init_state(net, tx, r, resolution, False), out_shardings=steps_fn.repl)(
        jax.random.key(0))
    rng = np.random.default_rng(0)
    batch_np = {"image": rng.random((batch, resolution, resolution, 3), dtype=np.float32),
                "label": rng.integers(0, num_classes, (batch,)).astype(np.int32),
                "mask": np.ones((batch,), np.float32)}
    data = steps_fn.put_batch(batch_np)
    key = jax.random.key(1)

    t0 = time.perf_counter()
    if mode == "train":
        compiled = steps_fn.train.lower(state, data, key).compile()

        def step(state):
            state, m = compiled(state, data, key)
            return state, m["loss"]
    else:
        infer = jax.jit(lambda s, x: s.apply_fn({"params": s.params, "batch_stats": s.batch_stats}, x, train=False))
        compiled = infer.lower(state, data["image"]).compile()

        def step(state):
            return state, compiled(state, data["image"])
    compile_s = time.perf_counter() - t0
    state, out = step(state)
    jax.block_until_ready(out)
    for _ in range(max(warmup - 1, 0)):
        state, out = step(state)
    jax.block_until_ready(out)
    times = []
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(steps):
        t = time.perf_counter()
        state, out = step(state)
        jax.block_until_ready(out)
        times.append(time.perf_counter() - t)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    med = statistics.median(times)
    result = {"model": model, "alpha": alpha, **(options or {}), "mode": mode, "resolution": resolution, "batch": batch,
              "dtype": dtype, "depthwise_impl": depthwise_impl,
              "native_kernel_grad": (mode == "train" and depthwise_ops.resolve_depthwise_impl(depthwise_impl) == "shift"
                                     and depthwise_ops.native_kernel_gradient_enabled(dtype)),
              "img_per_s": round(batch / med, 2),
              "step_ms_median": round(med * 1e3, 2), "step_ms_min": round(min(times) * 1e3, 2),
              "compile_s": round(compile_s, 2), "steps": steps, "backend": jax.default_backend(),
              "device": jax.devices()[0].device_kind, "devices": jax.device_count(), "jax": jax.__version__}
    result.update(cpu_user_s_per_step=round((ru1.ru_utime - ru0.ru_utime) / steps, 6),
                  cpu_sys_s_per_step=round((ru1.ru_stime - ru0.ru_stime) / steps, 6),
                  page_faults_per_step=round((ru1.ru_minflt - ru0.ru_minflt) / steps))
    # achieved arithmetic rate: 2 FLOPs per multiply-add; a train step costs ~3x the forward (forward, input
    # gradient, weight gradient), so 6 x MACs per image for training and 2 x MACs for inference
    from mobilejax.summary import summarize_module
    macs = summarize_module(net, resolution, model).macs
    result.update(macs_per_image=macs,
                  achieved_gflop_s=round((6 if mode == "train" else 2) * macs * batch / med / 1e9, 2))
    result.update(_temp_memory_mb(compiled))
    result.update(_xla_cost(compiled))
    result["malloc"] = malloc_in_use()
    result["glibc_tunables"] = os.environ.get("GLIBC_TUNABLES", "")
    result.update(_peak_memory_mb())
    return result


def print_benchmark(result: dict, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(result))
        return
    print(f"{result['model']} (alpha {result['alpha']}, {result['resolution']}px, batch {result['batch']}, "
          f"{result['mode']}, {result['dtype']}, depthwise {result['depthwise_impl']}"
          f"{', native kernel gradient' if result.get('native_kernel_grad') else ''}) on {result['device']}: "
          f"{result['img_per_s']} img/s (median step {result['step_ms_median']} ms), compile {result['compile_s']} s, "
          + ", ".join(f"{k} {v}" for k, v in result.items() if "peak" in k))
