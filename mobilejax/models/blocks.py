"""The blocks the families are built from, shared across families (one home each):

- `conv_bn`: conv -> BatchNorm -> activation (every family),
- `DepthwiseSeparable`: MobileNetV1's depthwise + pointwise pair,
- `InvertedResidual`: MobileNetV2's inverted residual with linear bottleneck, also MobileNetV3's block (with
  squeeze-excite and its own activations),
- `ShuffleUnit`: ShuffleNetV2's channel-split / channel-shuffle unit.

Submodule names are stable (`conv_dw`/`bn_dw`, `conv_pw`/`bn_pw`, `conv_pwl`/`bn_pwl`, `se`, ...): checkpoints and
the per-layer summary depend on them.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.ad_checkpoint import checkpoint_name

from mobilejax.layers import BatchNorm, Conv, SqueezeExcite, channel_shuffle, channel_split, get_activation
from mobilejax.models.base import LayerSettings


def conv_bn(x: jax.Array, features: int, kernel_size: int = 1, strides: int = 1, *, act: str | None, train: bool,
            name: str, ls: LayerSettings, depthwise: bool = False) -> jax.Array:
    """conv (submodule `conv_{name}`, no bias) -> BatchNorm (`bn_{name}`) -> activation (registry name; None = linear).

    Call it from inside a `@nn.compact` method: the submodules attach to the calling module. The convolution's
    output is named "conv" (`checkpoint_name`) for `jax.checkpoint` policies such as
    `save_only_these_names("conv")`; outside such a policy the name is the identity.
    """
    x = Conv(features, kernel_size, strides, depthwise=depthwise, depthwise_impl=ls.depthwise_impl,
             padding=ls.padding, dtype=ls.dtype, name=f"conv_{name}")(x)
    x = checkpoint_name(x, "conv")
    x = BatchNorm(use_running_average=not train or ls.freeze_bn, momentum=ls.bn_momentum, epsilon=ls.bn_epsilon, dtype=ls.dtype,
                  name=f"bn_{name}")(x)
    return get_activation(act)(x)


class DepthwiseSeparable(nn.Module):
    """Depthwise kxk conv-BN-act (`conv_dw`, `bn_dw`) then pointwise 1x1 conv-BN-act (`conv_pw`, `bn_pw`).

    With `separable=False`, one full kxk conv-BN-act (`conv_full`, `bn_full`) instead (MobileNetV1 Table 4).
    """
    features: int
    strides: int = 1
    kernel_size: int = 3
    activation: str = "relu6"
    separable: bool = True
    ls: LayerSettings = LayerSettings()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        if not self.separable:
            return conv_bn(x, self.features, self.kernel_size, self.strides, act=self.activation, train=train,
                           name="full", ls=self.ls)
        x = conv_bn(x, x.shape[-1], self.kernel_size, self.strides, act=self.activation, train=train, name="dw",
                    ls=self.ls, depthwise=True)
        return conv_bn(x, self.features, 1, 1, act=self.activation, train=train, name="pw", ls=self.ls)


class InvertedResidual(nn.Module):
    """1x1 expand (`conv_pw`/`bn_pw`, skipped when `expanded` == input channels) -> kxk depthwise (`conv_dw`/`bn_dw`)
    -> optional squeeze-excite (`se`) -> 1x1 projection (`conv_pwl`/`bn_pwl`, linear bottleneck by default) ->
    identity shortcut when the shapes allow it and `residual` is on."""
    features: int
    expanded: int
    strides: int = 1
    kernel_size: int = 3
    activation: str = "relu6"
    bottleneck_activation: str = "linear"
    se_channels: int = 0  # 0: no squeeze-excite
    se_gate: str = "hard_sigmoid"
    residual: bool = True
    ls: LayerSettings = LayerSettings()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        shortcut = x
        cin = x.shape[-1]
        if self.expanded != cin:
            x = conv_bn(x, self.expanded, 1, 1, act=self.activation, train=train, name="pw", ls=self.ls)
        x = conv_bn(x, self.expanded, self.kernel_size, self.strides, act=self.activation, train=train, name="dw",
                    ls=self.ls, depthwise=True)
        if self.se_channels:
            x = SqueezeExcite(self.se_channels, activation="relu", gate=self.se_gate, dtype=self.ls.dtype,
                              name="se")(x)
        x = conv_bn(x, self.features, 1, 1, act=self.bottleneck_activation, train=train, name="pwl", ls=self.ls)
        if self.residual and self.strides == 1 and cin == self.features:
            x = x + shortcut
        return x


class ShuffleUnit(nn.Module):
    """Stride 1: split channels in half, transform one half (`conv_pw`, `conv_dw`, `conv_pwl`), concatenate.
    Stride 2: both halves see the whole input; the left branch is depthwise + pointwise (`conv_dw_proj`,
    `conv_pw_proj`). Then channel shuffle (`shuffle=False` turns it off for the ablation)."""
    features: int
    strides: int = 1
    kernel_size: int = 3
    activation: str = "relu"
    shuffle: bool = True
    groups: int = 2
    ls: LayerSettings = LayerSettings()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        b = self.features // 2
        cin = x.shape[-1]
        k, s, act, ls = self.kernel_size, self.strides, self.activation, self.ls
        if s == 1:
            if cin != self.features:
                raise ValueError(f"a stride-1 ShuffleNetV2 unit needs equal in/out channels, got {cin}, {self.features}")
            left, right = channel_split(x, 2)
        else:
            left = conv_bn(x, cin, k, s, act=None, train=train, name="dw_proj", ls=ls, depthwise=True)
            left = conv_bn(left, b, 1, 1, act=act, train=train, name="pw_proj", ls=ls)
            right = x
        right = conv_bn(right, b, 1, 1, act=act, train=train, name="pw", ls=ls)
        right = conv_bn(right, b, k, s, act=None, train=train, name="dw", ls=ls, depthwise=True)
        right = conv_bn(right, b, 1, 1, act=act, train=train, name="pwl", ls=ls)
        out = jnp.concatenate([left, right], axis=-1)
        return channel_shuffle(out, self.groups) if self.shuffle else out
