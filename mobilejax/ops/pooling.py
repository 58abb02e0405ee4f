"""Max-pooling, 3x3 stride 2 with one pixel of padding (ShuffleNetV2's stem pool): the reference and a CPU fast path
with a written-out backward pass.

The reference is `flax.linen.max_pool` (XLA reduce-window; its gradient is select-and-scatter). On XLA:CPU that
backward pass runs as iotas, an index concatenation and a scatter over the padded input (~30 ms per ShuffleNetV2
step at 224 px, batch 32; docs/benchmarks.md). The fast path computes the forward as the maximum of the 9 strided
taps and keeps, per output, the index of the first tap that attains it (the tap select-and-scatter picks: the first
maximum in window order). The input gradient then has a closed form per parity of the input position: an even
row/column is the centre tap of exactly one window, an odd one is the last tap of one window and the first tap of the
next. So each of the four (row, column) parity planes is a sum of <= 4 masked, shifted cotangents, and the planes
interleave into the input gradient: fused elementwise loops and one copy, no scatter.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

POOL_IMPLS = ("auto", "xla", "shift")


def max_pool_3x3_s2_xla(x: jax.Array) -> jax.Array:
    """Reference: 3x3 max-pool, stride 2, padding 1 (PyTorch's `MaxPool2d(3, 2, 1)`), NHWC."""
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


def _taps(x: jax.Array) -> list[jax.Array]:
    """The 9 strided taps of x padded by one -inf pixel, in window order (row-major): tap 3*i + j is x[2y + i - 1,
    2x + j - 1] for every output (y, x)."""
    n, h, w, c = x.shape
    ho, wo = h // 2, w // 2
    low = jnp.array(-jnp.inf, x.dtype)
    xp = jax.lax.pad(x, low, ((0, 0, 0), (1, 1, 0), (1, 1, 0), (0, 0, 0)))
    return [jax.lax.slice(xp, (0, i, j, 0), (n, i + 2 * ho - 1, j + 2 * wo - 1, c), (1, 2, 2, 1))
            for i in range(3) for j in range(3)]


def _fwd_only(x):
    taps = _taps(x)
    out = taps[0]
    for t in taps[1:]:
        out = jnp.maximum(out, t)
    return out, taps


@jax.custom_vjp
def _max_pool_shift(x):
    return _fwd_only(x)[0]


def _max_pool_shift_fwd(x):
    out, taps = _fwd_only(x)
    # index of the first tap equal to the maximum (select-and-scatter's choice), as int8
    idx = jnp.full(out.shape, 8, jnp.int8)
    for k in range(7, -1, -1):
        idx = jnp.where(taps[k] == out, jnp.int8(k), idx)
    return out, idx


def _max_pool_shift_bwd(idx, g):
    n, ho, wo, c = g.shape
    z = jnp.zeros((), g.dtype)
    # one zero row and column after the end: the "next window" of the last odd row/column has no taps
    gp = jax.lax.pad(g, z, ((0, 0, 0), (0, 1, 0), (0, 1, 0), (0, 0, 0)))
    ip = jax.lax.pad(idx, jnp.int8(-1), ((0, 0, 0), (0, 1, 0), (0, 1, 0), (0, 0, 0)))

    def term(tap: int, dy: int, dx: int) -> jax.Array:
        """g of window (y + dy, x + dx) where that window's maximum is tap `tap`."""
        gs = jax.lax.slice(gp, (0, dy, dx, 0), (n, dy + ho, dx + wo, c))
        ks = jax.lax.slice(ip, (0, dy, dx, 0), (n, dy + ho, dx + wo, c))
        return jnp.where(ks == tap, gs, z)

    # input row 2y (even) = tap row 1 of window y; row 2y+1 (odd) = tap row 2 of window y and tap row 0 of window y+1
    rows = {0: [(1, 0)], 1: [(2, 0), (0, 1)]}
    planes = [[sum(term(3 * i + j, dy, dx) for i, dy in rows[pr] for j, dx in rows[pc]) for pc in (0, 1)]
              for pr in (0, 1)]
    dx = jnp.stack([jnp.stack(planes[0], axis=3), jnp.stack(planes[1], axis=3)], axis=2)  # (n, ho, 2, wo, 2, c)
    return (dx.reshape(n, 2 * ho, 2 * wo, c),)


_max_pool_shift.defvjp(_max_pool_shift_fwd, _max_pool_shift_bwd)


def max_pool_3x3_s2_shift(x: jax.Array) -> jax.Array:
    """3x3 max-pool, stride 2, padding 1, as the maximum of 9 strided taps with a closed-form backward pass (see the
    module doc). Needs even height and width (ShuffleNetV2's 112x112 stem map); `max_pool_3x3_s2` falls back to the
    reference otherwise. Same outputs and gradients as the reference, ties included (tests/test_pooling.py)."""
    if x.shape[1] % 2 or x.shape[2] % 2:
        raise ValueError(f"max_pool_3x3_s2_shift needs even height and width, got {x.shape[1]}x{x.shape[2]}")
    return _max_pool_shift(x)


def max_pool_3x3_s2(x: jax.Array, impl: str = "auto") -> jax.Array:
    """3x3 / stride 2 / padding 1 max-pool by implementation name: "xla" (reference), "shift" (fast path), "auto"
    (shift on CPU when the spatial size is even, else the reference) -- the same choice as `depthwise_impl`."""
    if impl not in POOL_IMPLS:
        raise ValueError(f"unknown pooling impl {impl!r}; allowed: {', '.join(POOL_IMPLS)}")
    even = x.shape[1] % 2 == 0 and x.shape[2] % 2 == 0
    if impl == "auto":
        impl = "shift" if jax.default_backend() == "cpu" and even else "xla"
    return max_pool_3x3_s2_shift(x) if impl == "shift" else max_pool_3x3_s2_xla(x)
