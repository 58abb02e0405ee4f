"""Flax layers shared by every model family: the channel-rounding rule (`make_divisible`), the activation registry,
`Conv` (standard, pointwise and depthwise with interchangeable implementations), `BatchNorm`, squeeze-excite, and
channel split / channel shuffle. The numerical kernels under `Conv` and `BatchNorm` are in `mobilejax.ops`; the
blocks built from these layers are in `mobilejax.models.blocks`.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from mobilejax.ops import (batch_norm_train, bn_normalize, conv_im2col, conv_xla, depthwise_conv,
                           resolve_depthwise_impl, use_im2col)

Dtype = Any

# --------------------------------------------------------------------------------------------------------------------
# Channel rounding


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round `value` to the nearest multiple of `divisor`, never going down by more than 10% (TF-slim rule)."""
    if divisor <= 0:
        raise ValueError(f"divisor must be a positive integer, got {divisor!r}")
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return int(new_value)


# --------------------------------------------------------------------------------------------------------------------
# Activations


def _linear(x):
    return x


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "relu6": jax.nn.relu6,
    "hard_swish": jax.nn.hard_swish,
    "hard_sigmoid": jax.nn.hard_sigmoid,
    "swish": jax.nn.silu,
    "silu": jax.nn.silu,
    "gelu": jax.nn.gelu,
    "sigmoid": jax.nn.sigmoid,
    "linear": _linear,
    "identity": _linear,
}


def check_activation(name: str | None, what: str = "activation") -> None:
    """Fail with the known names unless `name` is a registry name (or None, meaning linear)."""
    if name is not None and (not isinstance(name, str) or name not in ACTIVATIONS):
        raise ValueError(f"unknown {what} {name!r}; known activations: {', '.join(sorted(ACTIVATIONS))}")


def get_activation(name: str | None) -> Callable[[jax.Array], jax.Array]:
    """Activation function by registry name (`None` means linear)."""
    check_activation(name)
    return _linear if name is None else ACTIVATIONS[name]


# --------------------------------------------------------------------------------------------------------------------
# Convolution and BatchNorm

conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # He (fan-out), as torchvision


PADDINGS = ("symmetric", "same")


def same_padding(size: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """TensorFlow/Keras "same" padding of one spatial dimension: (before, after); the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel_size - size, 0)
    return total // 2, total - total // 2


class Conv(nn.Module):
    """2-D convolution, NHWC, padded symmetrically by `(k - 1) // 2` (torchvision semantics) or, with
    `padding="same"`, as TensorFlow/Keras do (a stride-2 conv on an even size pads one pixel after, none before).

    `depthwise=True` makes a depthwise convolution (one filter per input channel, `features` must equal the input
    channels); the kernel is stored as `(k, k, 1, C)` like `nn.Conv(feature_group_count=C)`.
    """
    features: int
    kernel_size: int = 1
    strides: int = 1
    depthwise: bool = False
    use_bias: bool = False
    depthwise_impl: str = "auto"
    padding: str = "symmetric"
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32
    kernel_init: Callable = conv_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel_size, self.strides
        pad = (k - 1) // 2
        if self.padding == "same" and x.ndim == 4 and k > 1:
            (top, bottom), (left, right) = (same_padding(x.shape[1], k, s), same_padding(x.shape[2], k, s))
            if {top, bottom, left, right} == {pad}:
                pass  # the same as symmetric: keep the fast paths
            else:  # asymmetric: pad explicitly, then convolve unpadded
                x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
                pad = 0
        elif self.padding not in PADDINGS:
            raise ValueError(f"unknown padding {self.padding!r}; allowed: {', '.join(PADDINGS)}")
        cin = x.shape[-1]
        if self.depthwise and self.features != cin:
            raise ValueError(f"depthwise conv needs features == input channels, got {self.features} vs {cin}")
        in_per_group = 1 if self.depthwise else cin
        kernel = self.param("kernel", self.kernel_init, (k, k, in_per_group, self.features), self.param_dtype)
        dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
        x = x.astype(dtype)
        kernel = kernel.astype(dtype)
        if self.depthwise:
            y = depthwise_conv(x, kernel, s, pad, self.depthwise_impl)
        elif k == 1 and x.ndim == 2:  # a 1x1 conv of pooled features (N, C), e.g. in squeeze-excite
            y = jnp.dot(x, kernel[0, 0])
        elif k == 1:
            if s > 1:
                x = x[:, ::s, ::s, :]
            # A 2-D matrix product: XLA:CPU then computes the kernel gradient without materialising a transposed copy
            # of the cotangent (the 4-D einsum's backward did; docs/profile.md).
            n, h, w, _ = x.shape
            y = jnp.dot(x.reshape(n * h * w, cin), kernel[0, 0]).reshape(n, h, w, self.features)
        elif use_im2col(kernel.shape, resolve_depthwise_impl(self.depthwise_impl)):
            y = conv_im2col(x, kernel, s, pad)  # few input channels (the RGB stem) on CPU: one matmul
        else:
            y = conv_xla(x, kernel, s, pad)
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), self.param_dtype)
            y = y + bias.astype(dtype)
        return y


class BatchNorm(nn.Module):
    """BatchNorm for NHWC feature maps with the variables of `flax.linen.BatchNorm` (params `scale`, `bias`;
    batch_stats `mean`, `var`), so checkpoints are interchangeable, and the same semantics: batch statistics and
    updated running averages (`momentum`) in training, running averages otherwise; float32 statistics."""
    use_running_average: bool = False
    momentum: float = 0.9
    epsilon: float = 1e-5
    dtype: Dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
        ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))
        scale = self.param("scale", nn.initializers.ones_init(), (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (c,), jnp.float32)
        dtype = self.dtype or jnp.result_type(x.dtype, jnp.float32)
        x = x.astype(dtype)
        if self.use_running_average:
            return bn_normalize(x, ra_mean.value, ra_var.value, scale, bias, self.epsilon)[0]
        y, mean, var = batch_norm_train(x, scale, bias, self.epsilon)
        if not self.is_initializing():
            mom = self.momentum
            ra_mean.value = mom * ra_mean.value + (1.0 - mom) * jax.lax.stop_gradient(mean)
            ra_var.value = mom * ra_var.value + (1.0 - mom) * jax.lax.stop_gradient(var)
        return y


# --------------------------------------------------------------------------------------------------------------------
# Squeeze-excite, channel split and channel shuffle


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool -> 1x1 reduce (+bias) -> act -> 1x1 expand (+bias) -> gate -> scale."""
    squeeze_channels: int
    activation: str = "relu"
    gate: str = "hard_sigmoid"
    dtype: Dtype | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        # the 1x1 convs act on the pooled (N, C) vector: the same parameters and maths as on (N, 1, 1, C), and a
        # form the TFLite converter maps to FULLY_CONNECTED (it rejects the reshaped 1x1 map)
        s = jnp.mean(x, axis=(1, 2))
        s = Conv(self.squeeze_channels, 1, use_bias=True, dtype=self.dtype, name="conv_reduce")(s)
        s = get_activation(self.activation)(s)
        s = Conv(c, 1, use_bias=True, dtype=self.dtype, name="conv_expand")(s)
        return x * get_activation(self.gate)(s).astype(x.dtype)[:, None, None, :]


def channel_split(x: jax.Array, sections: int = 2) -> Sequence[jax.Array]:
    """Split the channel axis into `sections` equal parts."""
    c = x.shape[-1]
    if c % sections:
        raise ValueError(f"cannot split {c} channels into {sections} equal parts")
    return jnp.split(x, sections, axis=-1)


def channel_shuffle(x: jax.Array, groups: int = 2) -> jax.Array:
    """ShuffleNet channel shuffle: (.., g * n) -> reshape (g, n) -> transpose -> (.., n * g)."""
    c = x.shape[-1]
    if groups < 1 or c % groups:
        raise ValueError(f"channel_shuffle: {c} channels are not divisible into groups={groups}")
    lead = x.shape[:-1]
    x = x.reshape(*lead, groups, c // groups)
    x = jnp.swapaxes(x, -1, -2)
    return x.reshape(*lead, c)


def channel_unshuffle(x: jax.Array, groups: int = 2) -> jax.Array:
    """Inverse of `channel_shuffle(x, groups)`."""
    c = x.shape[-1]
    if groups < 1 or c % groups:
        raise ValueError(f"channel_unshuffle: {c} channels are not divisible into groups={groups}")
    return channel_shuffle(x, c // groups)
