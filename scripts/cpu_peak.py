"""The machine's practical limits under XLA, for the GFLOP/s figure in docs/benchmarks.md: a jit-compiled
N x N float32 matmul (compute bound: the peak a convolution network could approach) and a large elementwise
multiply-add (memory bound: what the many small BatchNorm/activation passes of a mobile network run at), twice: into
a fresh output array per call ("stream", which pays for the kernel mapping its 256 MB of new pages) and in place
("stream_inplace": the input buffer donated and overwritten, as a train step's scratch is reused). On the AVX2-only
VM of docs/benchmarks.md the two differ ~4x (6 against 24 GB/s): the first is page faults, not DRAM bandwidth.

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
    donated = jax.jit(lambda v: v * 1.5 + 0.5, donate_argnums=0)
    v2 = v + 0.0
    times = []
    for _ in range(a.repeats + 1):
        t = time.perf_counter()
        v2 = jax.block_until_ready(donated(v2))
        times.append(time.perf_counter() - t)
    i_min, i_med = min(times[1:]), statistics.median(times[1:])
    print(json.dumps({"matmul_n": a.n, "matmul_gflop_s_best": round(flops / t_min / 1e9, 1),
                      "matmul_gflop_s_median": round(flops / t_med / 1e9, 1),
                      "stream_gb_s_best": round(nbytes / s_min / 1e9, 1),
                      "stream_gb_s_median": round(nbytes / s_med / 1e9, 1),
                      "stream_inplace_gb_s_best": round(nbytes / i_min / 1e9, 1),
                      "stream_inplace_gb_s_median": round(nbytes / i_med / 1e9, 1),
                      "jax": jax.__version__, "devices": jax.device_count()}))


if __name__ == "__main__":
    main()
