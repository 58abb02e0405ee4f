"""Depthwise convolution kernels (below Flax): the reference and the CPU fast path, with its backward pass.

Depthwise convolution is canonically `feature_group_count == channels`. `depthwise_impl` picks how it is computed:
  - "xla":   `lax.conv_general_dilated(..., feature_group_count=C)` (the reference; fast on GPU/TPU),
  - "shift": the same maths as k*k shifted multiply-adds (much faster under XLA on CPU); its kernel gradient goes to
             a one-pass C++ kernel (mobilejax/ops/native.py) where that builds, else to XLA ops (the batch fold),
  - "auto":  "shift" on CPU, "xla" elsewhere.
All implementations take a kernel of shape `(k, k, 1, C)` and symmetric padding `pad`, so a checkpoint trained
with one evaluates identically with another (tests/test_depthwise.py proves equal outputs and gradients).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from mobilejax.ops import native

DEPTHWISE_IMPLS = ("auto", "xla", "shift")

def resolve_depthwise_impl(impl: str) -> str:
    if impl not in DEPTHWISE_IMPLS:
        raise ValueError(f"unknown depthwise_impl {impl!r}; allowed: {', '.join(DEPTHWISE_IMPLS)}")
    if impl == "auto":
        return "shift" if jax.default_backend() == "cpu" else "xla"
    return impl


def _out_size(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


def depthwise_conv_xla(x: jax.Array, kernel: jax.Array, stride: int, pad: int) -> jax.Array:
    """Reference depthwise convolution: grouped convolution with one group per channel."""
    return jax.lax.conv_general_dilated(
        x, kernel, window_strides=(stride, stride), padding=((pad, pad), (pad, pad)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=x.shape[-1])


def _tap(a: jax.Array, i: int, j: int, stride: int, ho: int, wo: int) -> jax.Array:
    """The (i, j) tap of a (padded) NHWC array: rows i, i+s, ..., `ho` of them; columns likewise."""
    n, _, _, c = a.shape
    return jax.lax.slice(a, (0, i, j, 0), (n, i + stride * (ho - 1) + 1, j + stride * (wo - 1) + 1, c),
                         (1, stride, stride, 1))


def _shift_sum(xp: jax.Array, kernel: jax.Array, stride: int, ho: int, wo: int) -> jax.Array:
    """sum over taps (i, j) of tap(xp, i, j) * kernel[i, j, 0]: one fused elementwise loop under XLA."""
    kh, kw = kernel.shape[0], kernel.shape[1]
    out = None
    for i in range(kh):
        for j in range(kw):
            term = _tap(xp, i, j, stride, ho, wo) * kernel[i, j, 0]
            out = term if out is None else out + term
    return out


def _pad_hw(x: jax.Array, lo: int, hi: int, interior: int = 0) -> jax.Array:
    if lo == hi == interior == 0:
        return x
    z = jnp.zeros((), x.dtype)
    return jax.lax.pad(x, z, ((0, 0, 0), (lo, hi, interior), (lo, hi, interior), (0, 0, 0)))


def _depthwise_shift_fwd_only(x, kernel, stride, pad):
    kh, kw = kernel.shape[0], kernel.shape[1]
    h, w = x.shape[1], x.shape[2]
    ho, wo = _out_size(h, kh, stride, pad), _out_size(w, kw, stride, pad)
    return _shift_sum(_pad_hw(x, pad, pad), kernel, stride, ho, wo)


# The kernel gradient sums tap * cotangent over the batch and the map. XLA:CPU emits a reduction as a scalar loop
# with the reduced axes innermost: over the batch (the leading axis) that is one strided load per image for every
# output element, up to 0.65 s per layer of MobileNetV2's 32 px step (docs/profile.md, "Round 4"). Instead the batch
# is folded in FOLD interleaved groups (image k * FOLD + r into group r) by elementwise adds, which XLA:CPU vectorises
# over the contiguous channels, until the leading axis is at most FOLD long; only that small remainder goes through a
# reduction. Groups are interleaved so that a batch sharded over devices folds within each device's images.
FOLD = 4


def _fold_factor(n: int, fold: int) -> int:
    """The largest f in fold..2 that divides n; 1 if none does (or fold < 2)."""
    return next((f for f in range(fold, 1, -1) if n % f == 0), 1)


def _fold_batch(terms, n: int, fold: int):
    """(sum over r < f of terms((f, r)), n // f), f the fold factor of n: terms((f, r)) is the term of the images with
    index = r (mod f). (terms(None), n), the whole batch unfolded, when n has no factor or is at most `fold`."""
    f = _fold_factor(n, fold)
    if f == 1 or n <= fold:
        return terms(None), n
    total = terms((f, 0))
    for r in range(1, f):
        total = total + terms((f, r))
    return total, n // f


def _group(a: jax.Array, group) -> jax.Array:
    """`a` itself (group None) or the images r, r + f, r + 2f, ... of it (group (f, r))."""
    if group is None:
        return a
    f, r = group
    return jax.lax.index_in_dim(a.reshape(a.shape[0] // f, f, *a.shape[1:]), r, axis=1, keepdims=False)


def _kernel_gradient(xp: jax.Array, g: jax.Array, kh: int, kw: int, stride: int, fold: int = FOLD) -> list[jax.Array]:
    """dW[i, j, c] = sum over (n, y, x) of tap_ij(xp)[n, y, x, c] * g[n, y, x, c], one (C,) vector per tap (i, j).
    The batch is folded by elementwise adds (see FOLD; fold=1: none), then the rest summed over (N', Ho, Wo)."""
    n, ho, wo, _ = g.shape
    grads = []
    for i in range(kh):
        for j in range(kw):
            part, m = _fold_batch(lambda grp: _tap(_group(xp, grp), i, j, stride, ho, wo) * _group(g, grp), n, fold)
            while m > fold and _fold_factor(m, fold) > 1:
                part, m = _fold_batch(lambda grp, a=part: _group(a, grp), m, fold)
            grads.append(jnp.sum(part, axis=(0, 1, 2)))
    return grads


def _kernel_gradient_xla(x, g, kh, kw, stride, pad):
    """The kernel gradient as a (kh*kw, C) array, in XLA ops (the fold above)."""
    return jnp.stack(_kernel_gradient(_pad_hw(x, pad, pad), g, kh, kw, stride))


# The fold still re-reads the padded input and the cotangent once per tap, at ~80% of memory bandwidth: most of
# MobileNetV3's 5x5 kernel gradients (docs/profile.md "Round 5"). The native kernel (mobilejax/ops/native.py) reads
# them once; it is used on a single CPU device for float32 square kernels when it builds (else the fold). Its own
# derivative (grad of grad) is the fold's.
@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _kernel_gradient_native(x, g, k, stride, pad):
    return native.depthwise_kernel_grad(x, g, k, stride, pad)


def _kernel_gradient_native_fwd(x, g, k, stride, pad):
    return native.depthwise_kernel_grad(x, g, k, stride, pad), (x, g)


def _kernel_gradient_native_bwd(k, stride, pad, res, ct):
    _, pullback = jax.vjp(lambda x, g: _kernel_gradient_xla(x, g, k, k, stride, pad), *res)
    return pullback(ct)


_kernel_gradient_native.defvjp(_kernel_gradient_native_fwd, _kernel_gradient_native_bwd)


def native_kernel_gradient_enabled(dtype=jnp.float32) -> bool:
    """Whether the shift path's kernel gradients of `dtype` go to the native kernel: float32 on a single CPU device
    (under a multi-device sharding XLA would gather the whole batch for the custom call), when the kernel builds."""
    return (jnp.dtype(dtype) == jnp.float32 and jax.default_backend() == "cpu" and jax.device_count() == 1
            and native.available())


def use_native_kernel_gradient(x: jax.Array, g: jax.Array, kh: int, kw: int) -> bool:
    """Whether this kernel gradient goes to the native kernel: square kernel, float32 input and cotangent, and
    `native_kernel_gradient_enabled()`."""
    return kh == kw and x.dtype == g.dtype and native_kernel_gradient_enabled(x.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise_shift(x, kernel, stride, pad):
    return _depthwise_shift_fwd_only(x, kernel, stride, pad)


def _depthwise_shift_fwd(x, kernel, stride, pad):
    return _depthwise_shift_fwd_only(x, kernel, stride, pad), (x, kernel)


def _depthwise_shift_bwd(stride, pad, res, g):
    x, kernel = res
    kh, kw = kernel.shape[0], kernel.shape[1]
    h, w = x.shape[1], x.shape[2]
    ho, wo = g.shape[1], g.shape[2]
    # Kernel gradient: dW[i, j, c] = sum_{n, y, x} tap_ij(pad(x))[n, y, x, c] * g[n, y, x, c].
    if use_native_kernel_gradient(x, g, kh, kw):
        dk = _kernel_gradient_native(x, g, kh, stride, pad)
    else:
        dk = _kernel_gradient_xla(x, g, kh, kw, stride, pad)
    dk = dk.reshape(kernel.shape).astype(kernel.dtype)
    # Input gradient: the transposed convolution = correlation of the (stride-dilated) cotangent with the flipped
    # kernel, padded so that it covers every input position.
    # (One fused loop instead of autodiff's sum of k*k scattered pads; docs/profile.md compares the two.)
    flipped = kernel[::-1, ::-1]
    lo_h, lo_w = kh - 1 - pad, kw - 1 - pad
    hi_h = h + kh - 1 - lo_h - ((ho - 1) * stride + 1)
    hi_w = w + kw - 1 - lo_w - ((wo - 1) * stride + 1)
    z = jnp.zeros((), g.dtype)
    gp = jax.lax.pad(g, z, ((0, 0, 0), (lo_h, hi_h, stride - 1), (lo_w, hi_w, stride - 1), (0, 0, 0)))
    dx = _shift_sum(gp, flipped, 1, h, w).astype(x.dtype)
    return dx, dk


_depthwise_shift.defvjp(_depthwise_shift_fwd, _depthwise_shift_bwd)


def depthwise_conv_shift(x: jax.Array, kernel: jax.Array, stride: int, pad: int) -> jax.Array:
    """Depthwise convolution as k*k shifted (strided) slices times per-channel weights, summed.

    Same result and padding as `depthwise_conv_xla`; XLA on CPU compiles this to fused elementwise loops, which run
    an order of magnitude faster than its grouped-convolution kernel (forward and backward). The backward pass is a
    `jax.custom_vjp`: input gradient = the transposed conv as one shifted-sum loop over the padded (and, at stride 2,
    dilated) cotangent; kernel gradient = the native one-pass kernel (float32 on one CPU device, when it builds) or
    the k*k tap products, the batch folded by elementwise adds, then summed (see FOLD). Reverse mode and vmap work;
    forward mode (jvp/jacfwd) does not (custom_vjp) -- use depthwise_impl="xla" for that.
    """
    return _depthwise_shift(x, kernel, stride, pad)


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: int, pad: int, impl: str = "auto") -> jax.Array:
    """Depthwise convolution of NHWC `x` with a `(k, k, 1, C)` kernel by implementation name (see the module doc)."""
    fn = depthwise_conv_shift if resolve_depthwise_impl(impl) == "shift" else depthwise_conv_xla
    return fn(x, kernel, stride, pad)
