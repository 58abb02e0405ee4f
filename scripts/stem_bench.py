"""How fast is the 224 px stem (3x3 stride-2 convolution of the RGB image) in each formulation, forward alone and
forward + kernel gradient (what the train step needs: the image gets no gradient)?

usage: GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python scripts/stem_bench.py [--batch 32] [--resolution 224] [--features 16] [--reps 5]

Formulations, all the same maths (checked against `conv_xla` before timing):
- xla: `lax.conv_general_dilated` (mobilejax/ops/conv.py `conv_xla`, the reference and the non-CPU path);
- im2col: the 9 strided taps concatenated to (N*Ho*Wo, 27) and one matmul (`conv_im2col`, the CPU path of the stems);
- s2d: space-to-depth first (2x2 pixel blocks -> 12 channels), then a 2x2 stride-1 convolution with the kernel
  rearranged (zeros where a 4x4 block has no 3x3 tap), by XLA;
- s2d+vjp: s2d forward with a hand-written kernel gradient (four shifted windows of the space-to-depth image, each
  a (12, N*Ho*Wo) x (N*Ho*Wo, F) matmul);
- direct: the 27 (tap, channel) broadcast products summed, one XLA loop fusion when alone (no patch matrix);
- direct+vjp: direct forward with im2col's kernel gradient.
Prints the median and every rep (ms per call, and CPU time per call) of each, alternated in one process;
`--only a,b` times a subset. An experiment, not a library path:
the result is in docs/benchmarks.md ("What limits the step").
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from mobilejax.ops.conv import conv_im2col, conv_xla  # noqa: E402


def space_to_depth(x: jax.Array) -> jax.Array:
    """Pad by 1 and fold each 2x2 block of pixels into channels: (N, H, W, C) -> (N, H/2+1, W/2+1, 4C)."""
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return xp.reshape(n, h // 2 + 1, 2, w // 2 + 1, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(
        n, h // 2 + 1, w // 2 + 1, 4 * c)


def kernel_to_s2d(kernel: jax.Array) -> jax.Array:
    """3x3xCxF -> 2x2x4CxF: tap (2a+p, 2b+q) of the 3x3 kernel is block (a, b), position (p, q); the 4th row/column
    is zero."""
    c, f = kernel.shape[2:]
    kp = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))
    return kp.reshape(2, 2, 2, 2, c, f).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * c, f)


def conv_s2d(x, kernel):
    return conv_xla(space_to_depth(x), kernel_to_s2d(kernel), 1, 0)


@jax.custom_vjp
def conv_s2d_vjp(x, kernel):
    return conv_s2d(x, kernel)


def _fwd(x, kernel):
    s = space_to_depth(x)
    return conv_xla(s, kernel_to_s2d(kernel), 1, 0), s


def _bwd(s, g):
    n, ho, wo, f = g.shape
    g2 = g.reshape(n * ho * wo, f)
    blocks = jnp.stack([jax.lax.dot_general(s[:, a:a + ho, b:b + wo, :].reshape(n * ho * wo, -1), g2,
                                            (((0,), (0,)), ((), ()))) for a in range(2) for b in range(2)])
    c = s.shape[-1] // 4
    k4 = blocks.reshape(2, 2, 2, 2, c, f).transpose(0, 2, 1, 3, 4, 5).reshape(4, 4, c, f)
    return None, k4[:3, :3]


conv_s2d_vjp.defvjp(_fwd, _bwd)


def conv_direct(x, kernel):
    """Direct: the sum over the 27 (tap, input channel) pairs of a window's channel times that pair's row of F
    weights; alone, XLA fuses it into one loop over the output (no patch matrix written)."""
    kh, kw, c, f = kernel.shape
    n, h, w, _ = x.shape
    ho, wo = h // 2, w // 2
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = kernel.reshape(kh * kw, c, f)
    out = None
    for t, (i, j) in enumerate((i, j) for i in range(kh) for j in range(kw)):
        window = jax.lax.slice(xp, (0, i, j, 0), (n, i + 2 * (ho - 1) + 1, j + 2 * (wo - 1) + 1, c), (1, 2, 2, 1))
        for ci in range(c):
            term = window[..., ci:ci + 1] * rows[t, ci]
            out = term if out is None else out + term
    return out


@jax.custom_vjp
def conv_direct_im2col_grad(x, kernel):
    return conv_direct(x, kernel)


def _direct_fwd(x, kernel):
    return conv_direct(x, kernel), x


def _direct_bwd(x, g):
    """im2col's kernel gradient (the VJP of `conv_im2col`; XLA drops its unused forward matmul); no input gradient
    (the image needs none)."""
    kernel = jnp.zeros((3, 3, x.shape[-1], g.shape[-1]), g.dtype)
    return None, jax.vjp(lambda k: conv_im2col(x, k, 2, 1), kernel)[1](g)[0]


conv_direct_im2col_grad.defvjp(_direct_fwd, _direct_bwd)

FORMULATIONS = {"xla": lambda x, k: conv_xla(x, k, 2, 1), "im2col": lambda x, k: conv_im2col(x, k, 2, 1),
                "s2d": conv_s2d, "s2d+vjp": conv_s2d_vjp,
                "direct": conv_direct, "direct+vjp": conv_direct_im2col_grad}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--features", type=int, default=16)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--only", default="", help="comma-separated formulations (default: all)")
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    r = a.resolution
    x = jnp.asarray(rng.normal(size=(a.batch, r, r, 3)).astype(np.float32))
    k = jnp.asarray(rng.normal(size=(3, 3, 3, a.features)).astype(np.float32) * 0.3)
    ct = jnp.asarray(rng.normal(size=(a.batch, r // 2, r // 2, a.features)).astype(np.float32))
    ref = conv_xla(x, k, 2, 1)
    ref_grad = jax.grad(lambda k: jnp.vdot(conv_xla(x, k, 2, 1), ct))(k)
    progs = {}
    for name, fn in FORMULATIONS.items():
        if a.only and name not in a.only.split(","):
            continue
        fwd = jax.jit(fn)
        train = jax.jit(lambda x, k, fn=fn: jax.value_and_grad(lambda k: jnp.vdot(fn(x, k), ct))(k))
        out, (_, grad) = fwd(x, k), train(x, k)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(ref))))
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(ref_grad))))
        progs[name] = (fwd, train)
    times = {(name, mode): [] for name in progs for mode in ("forward", "forward + kernel grad")}
    cpu = {key: [] for key in times}
    for _ in range(a.reps):
        for name, (fwd, train) in progs.items():
            for mode, prog in (("forward", fwd), ("forward + kernel grad", train)):
                t, c = time.perf_counter(), time.process_time()
                for _ in range(5):
                    jax.block_until_ready(prog(x, k))
                times[name, mode].append((time.perf_counter() - t) / 5 * 1000)
                cpu[name, mode].append((time.process_time() - c) / 5 * 1000)
    print(f"stem 3x3/2, {a.batch}x{r}x{r}x3 -> {a.features} features, ms per call (median; reps)")
    for (name, mode), v in times.items():
        print(f"  {name:8s} {mode:22s} {np.median(v):7.1f}  ({', '.join(f'{t:.1f}' for t in v)}); "
              f"CPU time {np.median(cpu[name, mode]):.1f}")


if __name__ == "__main__":
    main()
