"""MobileNetV1 (Howard et al., 2017): depthwise-separable convolutions and a width multiplier.

Layer for layer as keras.applications.MobileNet (4,231,976 trainable parameters at alpha 1.0, 224 px, 1000 classes).
`separable=False` replaces every depthwise + pointwise pair by one full convolution (paper Table 4).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from mobilejax.layers import LayerSettings, ModelCommon, check_activation, conv_bn, make_divisible

# (output channels, stride) of the 13 depthwise-separable blocks.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class DepthwiseSeparable(nn.Module):
    """Depthwise kxk conv-BN-act (`conv_dw`, `bn_dw`) then pointwise 1x1 conv-BN-act (`conv_pw`, `bn_pw`).

    With `separable=False`, one full kxk conv-BN-act (`conv_full`, `bn_full`) instead.
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


class MobileNetV1(ModelCommon):
    dropout: float = 1e-3  # keras.applications default
    separable: bool = True
    activation: str = "relu6"
    kernel_size: int = 3
    round_nearest: int = 8

    def __post_init__(self):
        check_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        self.check_input(x, 8 if self.small_input else 32)
        ch = lambda c: make_divisible(c * self.alpha, self.round_nearest)
        x = conv_bn(x, ch(32), 3, 1 if self.small_input else 2, act=self.activation, train=train, name="stem",
                    ls=self.ls)
        first_stride2 = True
        for i, (c, s) in enumerate(BLOCKS):
            if s == 2 and self.small_input and first_stride2:
                s, first_stride2 = 1, False
            x = DepthwiseSeparable(ch(c), s, self.kernel_size, self.activation, self.separable, self.ls,
                                   name=f"blocks_{i}")(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return self.head(x, train)
