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


def conv_im2col(x: jax.Array, kernel: jax.Array, stride: int, pad: int) -> jax.Array:
    """The same convolution as `conv_xla`, as patches (N*Ho*Wo, k*k*C) @ kernel (k*k*C, F)."""
    kh, kw, cin, features = kernel.shape
    n, h, w, _ = x.shape
    ho, wo = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    xp = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if pad else x
    taps = [jax.lax.slice(xp, (0, i, j, 0), (n, i + stride * (ho - 1) + 1, j + stride * (wo - 1) + 1, cin),
                          (1, stride, stride, 1)) for i in range(kh) for j in range(kw)]
    patches = jnp.concatenate(taps, axis=-1).reshape(n * ho * wo, kh * kw * cin)
    return jnp.dot(patches, kernel.reshape(kh * kw * cin, features)).reshape(n, ho, wo, features)


def use_im2col(kernel_shape, impl: str) -> bool:
    """Whether a dense conv with this HWIO kernel takes the im2col path under `impl` (the depthwise_impl switch,
    already resolved: "shift" = the CPU fast paths)."""
    kh, kw, cin, _ = kernel_shape
    return impl == "shift" and kh * kw > 1 and kh * kw * cin <= IM2COL_MAX_DEPTH
