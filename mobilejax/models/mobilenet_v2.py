"""MobileNetV2 (Sandler et al., 2018): inverted residuals with linear bottlenecks and ReLU6.

Layer for layer as torchvision / keras.applications (3,504,872 parameters at alpha 1.0, 1000 classes). The last 1x1
conv keeps 1280 channels for alpha <= 1 (the paper and Keras); it is scaled only for alpha > 1.
`InvertedResidual` is also MobileNetV3's block (with squeeze-excite and its own activations).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from mobilejax.layers import (LayerSettings, ModelCommon, SqueezeExcite, check_activation, conv_bn,
                              make_divisible)

# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2. t=None means the model's
# `expansion` knob (6 in the paper); the first block always has t=1.
SETTINGS = ((1, 16, 1, 1), (None, 24, 2, 2), (None, 32, 3, 2), (None, 64, 4, 2), (None, 96, 3, 1),
            (None, 160, 3, 2), (None, 320, 1, 1))


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


class MobileNetV2(ModelCommon):
    expansion: float = 6.0
    round_nearest: int = 8
    activation: str = "relu6"
    bottleneck_activation: str = "linear"
    residual: bool = True
    kernel_size: int = 3
    last_channels: int = 1280

    def __post_init__(self):
        check_activation(self.activation)
        check_activation(self.bottleneck_activation, "bottleneck_activation")
        if not self.expansion > 0:
            raise ValueError(f"expansion must be > 0, got {self.expansion!r}")
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        self.check_input(x, 8 if self.small_input else 32)
        ch = lambda c: make_divisible(c * self.alpha, self.round_nearest)
        c_in = ch(32)
        x = conv_bn(x, c_in, 3, 1 if self.small_input else 2, act=self.activation, train=train, name="stem",
                    ls=self.ls)
        i = 0
        for t, c, n, s in SETTINGS:
            t = self.expansion if t is None else t
            if self.small_input and c == 24:
                s = 1  # CIFAR ports: stem and the first stride-2 stage at stride 1 (total stride 8)
            c_out = ch(c)
            for j in range(n):
                x = InvertedResidual(c_out, int(round(c_in * t)), s if j == 0 else 1, self.kernel_size,
                                     self.activation, self.bottleneck_activation, residual=self.residual,
                                     ls=self.ls, name=f"blocks_{i}")(x, train)
                c_in = c_out
                i += 1
        last = make_divisible(self.last_channels * max(1.0, self.alpha), self.round_nearest)
        x = conv_bn(x, last, 1, 1, act=self.activation, train=train, name="head", ls=self.ls)
        x = jnp.mean(x, axis=(1, 2))
        return self.head(x, train)
