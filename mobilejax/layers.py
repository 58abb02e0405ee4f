"""Building blocks shared by every model family.

One place for: the channel-rounding rule (`make_divisible`), the activation registry, the convolution used by
every layer (standard, pointwise and depthwise, with interchangeable depthwise implementations), conv-BN-activation,
squeeze-excite, and channel split / channel shuffle.

Depthwise convolution is canonically `feature_group_count == channels`. `depthwise_impl` picks how it is computed:
  - "xla":   `lax.conv_general_dilated(..., feature_group_count=C)` (the reference; fast on GPU/TPU),
  - "shift": the same maths as k*k shifted multiply-adds (much faster under XLA on CPU),
  - "auto":  "shift" on CPU, "xla" elsewhere.
All implementations share parameters (kernel shape `(k, k, 1, C)`) and padding semantics, so a checkpoint trained
with one evaluates identically with another.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

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


def get_activation(name: str | None) -> Callable[[jax.Array], jax.Array]:
    """Activation function by registry name (`None` means linear)."""
    if name is None:
        return _linear
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known activations: {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]


def check_activation(name: str | None, what: str = "activation") -> None:
    if name is not None and name not in ACTIVATIONS:
        raise ValueError(f"unknown {what} {name!r}; known activations: {', '.join(sorted(ACTIVATIONS))}")


# --------------------------------------------------------------------------------------------------------------------
# Convolution

DEPTHWISE_IMPLS = ("auto", "xla", "shift")

conv_kernel_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # He (fan-out), as torchvision


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


def _sum_taps(ops: list[jax.Array]) -> list[jax.Array]:
    """Per-channel sums over (N, H, W) of every array in `ops`, as one variadic reduction (one pass over the inputs,
    k*k accumulators) in two stages: over N first (keeps H, W, C contiguous, so it vectorises), then over H, W of
    the N-times smaller partials. XLA:CPU runs k*k separate (N, H, W) reductions of sliced inputs (what autodiff
    of the slices gives) about 1-3x slower in isolation (docs/profile.md)."""
    zeros = [jnp.zeros((), o.dtype) for o in ops]
    add = lambda a, b: [u + v for u, v in zip(a, b)]  # noqa: E731
    part = jax.lax.reduce(ops, zeros, add, (0,))
    return [jnp.sum(p, axis=(0, 1)) for p in part]


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
    xp = _pad_hw(x, pad, pad)
    dk = _sum_taps([_tap(xp, i, j, stride, ho, wo) * g for i in range(kh) for j in range(kw)])
    dk = jnp.stack(dk).reshape(kernel.shape).astype(kernel.dtype)
    # Input gradient: the transposed convolution = correlation of the (stride-dilated) cotangent with the flipped
    # kernel, padded so that it covers every input position.
    # (Measured: faster than autodiff's sum of k*k scattered pads at stride 1, on par at stride 2; docs/profile.md.)
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
    dilated) cotangent; kernel gradient = one two-stage variadic reduction of the k*k tap products. Reverse mode and
    vmap work; forward mode (jvp/jacfwd) does not (custom_vjp) -- use depthwise_impl="xla" for that.
    """
    return _depthwise_shift(x, kernel, stride, pad)


class Conv(nn.Module):
    """2-D convolution with symmetric padding `(k - 1) // 2` (torchvision semantics), NHWC.

    `depthwise=True` makes a depthwise convolution (one filter per input channel, `features` must equal the input
    channels); the kernel is stored as `(k, k, 1, C)` like `nn.Conv(feature_group_count=C)`.
    """
    features: int
    kernel_size: int = 1
    strides: int = 1
    depthwise: bool = False
    use_bias: bool = False
    depthwise_impl: str = "auto"
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32
    kernel_init: Callable = conv_kernel_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, s = self.kernel_size, self.strides
        pad = (k - 1) // 2
        cin = x.shape[-1]
        if self.depthwise and self.features != cin:
            raise ValueError(f"depthwise conv needs features == input channels, got {self.features} vs {cin}")
        in_per_group = 1 if self.depthwise else cin
        kernel = self.param("kernel", self.kernel_init, (k, k, in_per_group, self.features), self.param_dtype)
        dtype = self.dtype or jnp.result_type(x.dtype, self.param_dtype)
        x = x.astype(dtype)
        kernel = kernel.astype(dtype)
        if self.depthwise:
            impl = resolve_depthwise_impl(self.depthwise_impl)
            fn = depthwise_conv_shift if impl == "shift" else depthwise_conv_xla
            y = fn(x, kernel, s, pad)
        elif k == 1:
            if s > 1:
                x = x[:, ::s, ::s, :]
            # A 2-D matrix product: XLA:CPU then computes the kernel gradient without materialising a transposed copy
            # of the cotangent (the 4-D einsum's backward did, at up to 290 ms per layer; docs/profile.md).
            n, h, w, _ = x.shape
            y = jnp.dot(x.reshape(n * h * w, cin), kernel[0, 0]).reshape(n, h, w, self.features)
        else:
            y = jax.lax.conv_general_dilated(
                x, kernel, window_strides=(s, s), padding=((pad, pad), (pad, pad)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"))
        if self.use_bias:
            bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), self.param_dtype)
            y = y + bias.astype(dtype)
        return y


# --------------------------------------------------------------------------------------------------------------------
# BatchNorm

_BN_AXES = (0, 1, 2)


def _channel_sum(x: jax.Array) -> jax.Array:
    """Per-channel sum over (N, H, W): one reduce primitive (cheaper to trace than jnp.sum's generic path)."""
    return jax.lax.reduce(x, np.zeros((), x.dtype), jax.lax.add, _BN_AXES)


def _bn_stats(xf: jax.Array) -> tuple[jax.Array, jax.Array]:
    inv_m = 1.0 / (xf.size // xf.shape[-1])
    mean = _channel_sum(xf) * inv_m
    var = jnp.maximum(_channel_sum(xf * xf) * inv_m - mean * mean, 0.0)  # E[x^2] - E[x]^2, clipped at 0
    return mean, var


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def batch_norm_train(x: jax.Array, scale: jax.Array, bias: jax.Array, epsilon: float):
    """Train-mode BatchNorm over (N, H, W) of an NHWC array: returns (y, batch mean, batch variance).

    Statistics and normalisation in float32 (y in x's dtype), the same maths as `flax.linen.BatchNorm`
    (fast variance, clipped at 0). The backward pass is written out (`jax.custom_vjp`): one pass for the two
    per-channel sums, one elementwise pass for dx. That is fewer, simpler XLA ops than autodiff of the forward
    and makes the train step trace and compile faster (docs/profile.md)."""
    return _bn_train_fwd(x, scale, bias, epsilon)[0]


def _bn_normalize(x, mean, var, scale, bias, epsilon):
    """(x - mean) * scale / sqrt(var + eps) + bias in float32, returned in x's dtype, with 1/sqrt(var + eps)."""
    inv = jax.lax.rsqrt(var + epsilon)
    return ((x.astype(jnp.float32) - mean) * (scale * inv) + bias).astype(x.dtype), inv


def _bn_train_fwd(x, scale, bias, epsilon):
    mean, var = _bn_stats(x.astype(jnp.float32))
    y, inv = _bn_normalize(x, mean, var, scale, bias, epsilon)
    return (y, mean, var), (x, mean, inv, scale)


def _bn_train_bwd(epsilon, res, cotangents):
    x, mean, inv, scale = res
    g, g_mean, g_var = cotangents
    m = x.size // x.shape[-1]
    xf, gf = x.astype(jnp.float32), g.astype(jnp.float32)
    xc = xf - mean
    xhat = xc * inv
    d_bias = _channel_sum(gf)
    d_scale = _channel_sum(gf * xhat)
    dx = (scale * inv) * (gf - d_bias / m - xhat * (d_scale / m))
    # cotangents of the returned statistics (zero when they only feed the running averages)
    dx = dx + g_mean / m + xc * (2.0 * g_var / m)
    return dx.astype(x.dtype), d_scale.astype(scale.dtype), d_bias.astype(scale.dtype)


batch_norm_train.defvjp(_bn_train_fwd, _bn_train_bwd)


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
            return _bn_normalize(x, ra_mean.value, ra_var.value, scale, bias, self.epsilon)[0]
        y, mean, var = batch_norm_train(x, scale, bias, self.epsilon)
        if not self.is_initializing():
            mom = self.momentum
            ra_mean.value = mom * ra_mean.value + (1.0 - mom) * jax.lax.stop_gradient(mean)
            ra_var.value = mom * ra_var.value + (1.0 - mom) * jax.lax.stop_gradient(var)
        return y


@dataclasses.dataclass(frozen=True)
class LayerSettings:
    """Settings every conv-BN layer of a model shares (passed to blocks as one hashable field)."""
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    depthwise_impl: str = "auto"
    dtype: Dtype | None = None


def conv_bn(x: jax.Array, features: int, kernel_size: int = 1, strides: int = 1, *, act: str | None, train: bool,
            name: str, ls: LayerSettings, depthwise: bool = False) -> jax.Array:
    """conv (submodule `conv_{name}`, no bias) -> BatchNorm (`bn_{name}`) -> activation (registry name; None = linear).

    Call it from inside a `@nn.compact` method: the submodules attach to the calling module.
    """
    x = Conv(features, kernel_size, strides, depthwise=depthwise, depthwise_impl=ls.depthwise_impl, dtype=ls.dtype,
             name=f"conv_{name}")(x)
    x = BatchNorm(use_running_average=not train, momentum=ls.bn_momentum, epsilon=ls.bn_epsilon, dtype=ls.dtype,
                  name=f"bn_{name}")(x)
    return get_activation(act)(x)


class ModelCommon(nn.Module):
    """Fields and checks every model family shares (a base class, not a model)."""
    num_classes: int = 1000
    alpha: float = 1.0
    dropout: float = 0.2
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    small_input: bool = False
    depthwise_impl: str = "auto"
    dtype: Dtype | None = None

    def __post_init__(self):
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not self.alpha > 0:
            raise ValueError(f"alpha (width multiplier) must be a number > 0, got {self.alpha!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.depthwise_impl not in DEPTHWISE_IMPLS:
            raise ValueError(f"unknown depthwise_impl {self.depthwise_impl!r}; allowed: {', '.join(DEPTHWISE_IMPLS)}")
        super().__post_init__()

    @property
    def ls(self) -> LayerSettings:
        return LayerSettings(self.bn_momentum, self.bn_epsilon, self.depthwise_impl, self.dtype)

    def head(self, x: jax.Array, train: bool) -> jax.Array:
        """Dropout -> linear classifier (`classifier`), logits in float32."""
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(x)
        return x.astype(jnp.float32)

    def check_input(self, x: jax.Array, total_stride: int) -> None:
        model = type(self).__name__
        if x.ndim != 4:
            raise ValueError(f"{model} expects NHWC images (4-D), got shape {tuple(x.shape)}")
        h, w = x.shape[1], x.shape[2]
        if min(h, w) < total_stride:
            hint = "" if self.small_input else " (small_input=True lowers this to 8, for 32x32 data)"
            raise ValueError(f"resolution {h}x{w} is too small for {model}: its strides reduce the input "
                             f"{total_stride}x, so height and width must be at least {total_stride}{hint}")


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
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = Conv(self.squeeze_channels, 1, use_bias=True, dtype=self.dtype, name="conv_reduce")(s)
        s = get_activation(self.activation)(s)
        s = Conv(c, 1, use_bias=True, dtype=self.dtype, name="conv_expand")(s)
        return x * get_activation(self.gate)(s).astype(x.dtype)


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
