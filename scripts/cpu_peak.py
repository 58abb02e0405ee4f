"""The machine's practical limits under XLA, for the GFLOP/s figure in docs/benchmarks.md: a jit-compiled
N x N float32 matmul (compute bound: the peak a convolution network could approach) and a large elementwise
multiply-add (memory bound: what the many small BatchNorm/activation passes of a mobile network run at).

usage: python scripts/cpu_peak.py [--n 2048] [--repeats 20]   (prints one JSON line)
"""
import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp


def best_of(fn, *args, repeats):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=20)
    a = p.parse_args()
    k1, k2 = jax.random.split(jax.random.key(0))
    x = jax.random.normal(k1, (a.n, a.n), jnp.float32)
    y = jax.random.normal(k2, (a.n, a.n), jnp.float32)
    t_min, t_med = best_of(jax.jit(jnp.dot), x, y, repeats=a.repeats)
    flops = 2 * a.n ** 3
    v = jax.random.normal(k1, (64 * 2 ** 20,), jnp.float32)  # 256 MB: far beyond the caches
    axpy = jax.jit(lambda v: v * 1.5 + 0.5)
    s_min, s_med = best_of(axpy, v, repeats=a.repeats)
    nbytes = 2 * v.size * 4  # read + write
    print(json.dumps({"matmul_n": a.n, "matmul_gflop_s_best": round(flops / t_min / 1e9, 1),
                      "matmul_gflop_s_median": round(flops / t_med / 1e9, 1),
                      "stream_gb_s_best": round(nbytes / s_min / 1e9, 1),
                      "stream_gb_s_median": round(nbytes / s_med / 1e9, 1),
                      "jax": jax.__version__, "devices": jax.device_count()}))


if __name__ == "__main__":
    main()
