"""Standard (dense) convolution with few input channels as one matrix product: the CPU fast path of the stem.

A 3x3 convolution of an RGB image has 27 multiply-adds per output value; XLA:CPU's convolution kernel runs it at a
small fraction of the machine's matmul rate, forward and kernel gradient (ShuffleNetV2 at 224 px, batch 32: 67 ms
forward and 33 ms kernel gradient per step; docs/benchmarks.md). Gathering the k*k taps of the padded input into
one (N*Ho*Wo, k*k*C) matrix (im2col) turns it into a single matmul whose kernel gradient is another matmul; the
image itself needs no gradient. Same maths as `lax.conv_general_dilated` (the kernel's HWIO layout flattens in the
same (i, j, c) order as the patches); tests/test_conv.py proves equal outputs and gradients.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

# im2col when k*k*C_in is at most this: the patch matrix then stays small (27 columns for a 3x3 RGB stem)
IM2COL_MAX_DEPTH = 64


def conv_xla(x: jax.Array, kernel: jax.Array, stride: int, pad: int) -> jax.Array:
    """Reference: NHWC x HWIO convolution, symmetric padding `pad`."""
    return jax.lax.conv_general_dilated(x, kernel, window_strides=(stride, stride), padding=((pad, pad), (pad, pad)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _extent(size: int, pad: int, k: int, stride: int) -> tuple[int, int]:
    """Output length along one axis, and the padded length that `_patches` reshapes into groups of `stride` pixels:
    (out + ceil(k / stride) - 1) groups, i.e. `stride` * that many pixels."""
    out = (size + 2 * pad - k) // stride + 1
    return out, stride * (out + -(-k // stride) - 1)


def _patches(x: jax.Array, kh: int, kw: int, stride: int, pad: int) -> jax.Array:
    """The (N, Ho, Wo, kh*kw*C) patch tensor of a kh x kw / `stride` convolution with `pad` zeros each side, its
    last axis in the kernel's HWIO (i, j, c) order, built from reshapes and unstrided slices. Tap j of output column
    o reads pixel stride*o + j: folding each `stride` consecutive pixels of a row into channels ((W, C) ->
    (W/stride, stride*C)) turns the taps j = stride*b + q (q < stride) into channel ranges of group o + b, so a row's
    taps are ceil(kw/stride) contiguous slices; the same fold of the rows makes tap i a slice of whole rows. (Strided
    slices with 3 channels innermost, one per tap, ran at ~1 GB/s on XLA:CPU: half the stem's time.)"""
    n, h, w, c = x.shape
    ho, hp = _extent(h, pad, kh, stride)
    wo, wp = _extent(w, pad, kw, stride)
    # pad `pad` zeros before, and after as many as the groups need (or crop what no tap reads)
    x = jnp.pad(x[:, :hp - pad, :wp - pad], ((0, 0), (pad, max(0, hp - h - pad)), (pad, max(0, wp - w - pad)), (0, 0)))
    g = x.reshape(n, hp, wp // stride, stride * c)
    cols = jnp.concatenate([g[:, :, b:b + wo, :min(stride, kw - stride * b) * c]
                            for b in range(-(-kw // stride))], axis=-1)           # (N, hp, Wo, kw*C)
    rows = cols.reshape(n, hp // stride, stride, wo, kw * c)
    return jnp.concatenate([rows[:, i // stride:i // stride + ho, i % stride] for i in range(kh)], axis=-1)


def conv_im2col(x: jax.Array, kernel: jax.Array, stride: int, pad: int) -> jax.Array:
    """The same convolution as `conv_xla`, as patches (N*Ho*Wo, k*k*C) @ kernel (k*k*C, F)."""
    kh, kw, cin, features = kernel.shape
    patches = _patches(x, kh, kw, stride, pad)
    n, ho, wo, depth = patches.shape
    return jnp.dot(patches.reshape(n * ho * wo, depth), kernel.reshape(depth, features)).reshape(n, ho, wo, features)


def use_im2col(kernel_shape, impl: str) -> bool:
    """Whether a dense conv with this HWIO kernel takes the im2col path under `impl` (the depthwise_impl switch,
    already resolved: "shift" = the CPU fast paths)."""
    kh, kw, cin, _ = kernel_shape
    return impl == "shift" and kh * kw > 1 and kh * kw * cin <= IM2COL_MAX_DEPTH
