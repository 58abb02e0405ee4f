"""The depthwise kernel gradient's sum over (N, H, W), alternated, at the layer shapes of MobileNetV3 (224 px, batch
32) and MobileNetV2 (small-input stem, 32 px, batch 128):
- n, nh, nhw: one variadic reduction of the k*k tap products (one pass, k*k accumulators) whose first stage sums over
  N (then H, W), over N and H, or all of (N, H, W) at once: the library's kernel gradient until 2026-12-05 ("n" above
  28x28 maps, "nh" up to them), kept here for comparison;
- fold1, fold2, fold4, fold8: the library's kernel gradient (`mobilejax/ops/depthwise.py`, FOLD = 4): the batch folded
  by elementwise adds of that many interleaved groups, repeatedly, then the remainder summed (fold1: no fold);
- other formulations, tried for MobileNetV3's 5x5 layers to share reads between taps or hand the sums to YNNPACK
  (docs/profile.md "Round 5"): "stack" (every tap's first fold level in one (k*k, N/4, H, W, C) array, then one
  reduction), "product" (each tap product written out, then summed as (N*H*W, C)), "chunk" (a scan over pairs of
  images, all taps per pair), "rows" (per kernel row one batched matmul over the channels, (W + k - 1) x W outputs per
  channel, and its diagonals);
- native: the one-pass C++ kernel (mobilejax/ops/native.py; the library's kernel gradient since 2026-12-06 where it
  builds, docs/profile.md "Round 6").
XLA:CPU emits each reduction as a scalar loop with the reduced axes innermost, so "n" walks the batch with one
strided load per image for every output element; docs/profile.md "Round 4" has the numbers.

usage: env $(python -m mobilejax.runtime) python scripts/dk_reduce_bench.py [--reps 3] [--variants n fold4 ...]
                                                                            [--max-h 999] [--kernel 5]
(the `env` prefix gives the script the allocator settings the `mobilejax` command runs under.)
Prints one JSON line per shape: ms per call of every variant (every rep), and each one's median relative to the first.
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
from mobilejax.ops import native  # noqa: E402

FIRST_STAGE = {"n": (0,), "nh": (0, 1), "nhw": (0, 1, 2)}
FOLDS = {"fold1": 1, "fold2": 2, "fold4": 4, "fold8": 8}
FORMS = ("stack", "product", "chunk", "rows")
SHAPES = [  # (N, H, C, k, stride): input map, channels, kernel, stride
    (32, 112, 72, 3, 2), (32, 56, 72, 3, 1), (32, 28, 120, 5, 1), (32, 14, 480, 3, 1), (32, 14, 672, 5, 1),
    (32, 7, 960, 5, 1),
    (128, 32, 96, 3, 1), (128, 16, 192, 3, 1), (128, 8, 384, 3, 1), (128, 4, 960, 3, 1)]


def variadic_sum(ops: list[jax.Array], first: tuple[int, ...]) -> list[jax.Array]:
    """Per-channel sums over (N, H, W) of every array in `ops`: one variadic reduction over the axes `first`, then the
    rest of the much smaller partials (the library's way until 2026-12-05)."""
    zeros = [jnp.zeros((), o.dtype) for o in ops]
    part = jax.lax.reduce(ops, zeros, lambda a, b: [u + v for u, v in zip(a, b)], first)
    return [jnp.sum(q, axis=tuple(range(q.ndim - 1))) for q in part]


def sum_rows(ops: list[jax.Array]) -> jax.Array:
    """Per-channel sums of every array in `ops`, each written out first and then reduced as (rows, C)."""
    ops = jax.lax.optimization_barrier(ops)
    return jnp.stack([o.reshape(-1, o.shape[-1]).sum(0) for o in ops])


def other_form(form: str, xp: jax.Array, g: jax.Array, k: int, stride: int) -> jax.Array:
    """(k*k, C) kernel gradient by one of FORMS (see the module doc)."""
    n, ho, wo, c = g.shape
    taps = [(i, j) for i in range(k) for j in range(k)]
    if form == "stack":
        first = [dw._fold_batch(lambda grp, i=i, j=j: dw._tap(dw._group(xp, grp), i, j, stride, ho, wo)
                                * dw._group(g, grp), n, dw.FOLD)[0] for i, j in taps]
        st = jax.lax.optimization_barrier(jnp.stack(first))
        return st.reshape(k * k, -1, c).sum(1)
    if form == "product":
        return sum_rows([dw._tap(xp, i, j, stride, ho, wo) * g for i, j in taps])
    if form == "chunk":
        pair = lambda a: a.reshape(n // 2, 2, *a.shape[1:])
        def body(acc, xg):
            return acc + sum_rows([dw._tap(xg[0], i, j, stride, ho, wo) * xg[1] for i, j in taps]), None
        return jax.lax.scan(body, jnp.zeros((k * k, c), g.dtype), (pair(xp), pair(g)))[0]
    # rows: m[c, p, q] = sum over (n, y) of xp[n, y*s + i, p, c] * g[n, y, q, c]; dW[i, j, c] = sum_q m[c, q*s + j, q]
    gt = jnp.transpose(g, (3, 0, 1, 2)).reshape(c, n * ho, wo)
    out, q = [], jnp.arange(wo)
    for i in range(k):
        xi = jax.lax.slice_in_dim(xp, i, i + stride * (ho - 1) + 1, stride, axis=1)
        m = jnp.einsum("cmp,cmq->cpq", jnp.transpose(xi, (3, 0, 1, 2)).reshape(c, n * ho, -1), gt)
        out += [m[:, j + stride * q, q].sum(-1) for j in range(k)]
    return jnp.stack(out)


def kernel_grad(variant: str, k: int, stride: int):
    def f(x, g):
        xp = dw._pad_hw(x, k // 2, k // 2)
        ho, wo = g.shape[1], g.shape[2]
        if variant in FOLDS:
            return jnp.stack(dw._kernel_gradient(xp, g, k, k, stride, FOLDS[variant]))
        if variant in FORMS:
            return other_form(variant, xp, g, k, stride)
        if variant == "native":
            return native.depthwise_kernel_grad(x, g, k, stride, k // 2)
        return jnp.stack(variadic_sum([dw._tap(xp, i, j, stride, ho, wo) * g for i in range(k) for j in range(k)],
                                      FIRST_STAGE[variant]))
    return jax.jit(f)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--variants", nargs="+", default=["n", "nh", "fold4"],
                   choices=[*FIRST_STAGE, *FOLDS, *FORMS, "native"])
    p.add_argument("--max-h", type=int, default=999, help="only the shapes whose input map is at most this high")
    p.add_argument("--kernel", type=int, default=0, help="only the shapes with this kernel size (0: all)")
    a = p.parse_args()
    if "native" in a.variants and not native.available():
        sys.exit(f"native kernel unavailable: {native.why_unavailable()}")
    for n, h, c, k, s in [sh for sh in SHAPES if sh[1] <= a.max_h and a.kernel in (0, sh[3])]:
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((n, h, h, c), np.float32))
        ho = (h + 2 * (k // 2) - k) // s + 1
        g = jnp.asarray(rng.standard_normal((n, ho, ho, c), np.float32))
        fns = {o: kernel_grad(o, k, s) for o in a.variants}
        ref = fns[a.variants[0]](x, g)
        err = {o: float(jnp.max(jnp.abs(f(x, g) - ref)) / jnp.max(jnp.abs(ref))) for o, f in fns.items()}
        ms = {o: [] for o in a.variants}
        for _ in range(a.reps):
            for o, f in fns.items():  # alternated: every variant once per rep
                f(x, g).block_until_ready()
                t0 = time.perf_counter()
                for _ in range(5):
                    f(x, g).block_until_ready()
                ms[o].append(round((time.perf_counter() - t0) / 5 * 1e3, 2))
        base = np.median(ms[a.variants[0]])
        print(json.dumps({"shape": [n, h, c, k, s], "ms": ms, "rel_err_vs_first": err,
                          "speedup_vs_first": {o: round(base / np.median(v), 2) for o, v in ms.items()}}), flush=True)


if __name__ == "__main__":
    main()
