"""The depthwise kernel gradient's reduction in three orders, alternated, at the layer shapes of MobileNetV3 (224 px,
batch 32) and MobileNetV2 (small-input stem, 32 px, batch 128): the first stage over N (then H, W), over N and H
(then W), or all of (N, H, W) in one variadic reduction. `mobilejax/ops/depthwise.py` picks "n" or "nh" by map size
(`SMALL_MAP`); this is the measurement behind that rule (docs/benchmarks.md).

usage: python scripts/dk_reduce_bench.py [--reps 3] [--orders n nh nhw] [--max-h 999]
Prints one JSON line per shape: ms per call of every order (every rep), and each order's median relative to "n".
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mobilejax.ops import depthwise as dw  # noqa: E402

FIRST_STAGE = {"n": (0,), "nh": (0, 1), "nhw": (0, 1, 2)}
SHAPES = [  # (N, H, C, k, stride): input map, channels, kernel, stride
    (32, 112, 72, 3, 2), (32, 56, 72, 3, 1), (32, 28, 120, 5, 1), (32, 14, 480, 3, 1), (32, 7, 960, 5, 1),
    (128, 32, 96, 3, 1), (128, 16, 192, 3, 1), (128, 8, 384, 3, 1), (128, 4, 960, 3, 1)]


def kernel_grad(order: str, k: int, stride: int):
    def f(x, g):
        xp = dw._pad_hw(x, k // 2, k // 2)
        ho, wo = g.shape[1], g.shape[2]
        return jnp.stack(dw._sum_taps([dw._tap(xp, i, j, stride, ho, wo) * g for i in range(k) for j in range(k)],
                                      FIRST_STAGE[order]))
    return jax.jit(f)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--orders", nargs="+", default=["n", "nh", "nhw"], choices=sorted(FIRST_STAGE))
    p.add_argument("--max-h", type=int, default=999, help="only the shapes whose input map is at most this high")
    a = p.parse_args()
    for n, h, c, k, s in [shape for shape in SHAPES if shape[1] <= a.max_h]:
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((n, h, h, c), np.float32))
        ho = (h + 2 * (k // 2) - k) // s + 1
        g = jnp.asarray(rng.standard_normal((n, ho, ho, c), np.float32))
        fns = {o: kernel_grad(o, k, s) for o in a.orders}
        ref = fns[a.orders[0]](x, g)
        err = {o: float(jnp.max(jnp.abs(f(x, g) - ref)) / jnp.max(jnp.abs(ref))) for o, f in fns.items()}
        ms = {o: [] for o in a.orders}
        for _ in range(a.reps):
            for o, f in fns.items():  # alternated: every order once per rep
                f(x, g).block_until_ready()
                t0 = time.perf_counter()
                for _ in range(5):
                    f(x, g).block_until_ready()
                ms[o].append(round((time.perf_counter() - t0) / 5 * 1e3, 2))
        base = np.median(ms[a.orders[0]])
        print(json.dumps({"shape": [n, h, c, k, s], "ms": ms, "rel_err_vs_first": err,
                          "speedup_vs_first": {o: round(base / np.median(v), 2) for o, v in ms.items()}}), flush=True)


if __name__ == "__main__":
    main()
