"""MobileNetV2 (Sandler et al., 2018): inverted residuals with linear bottlenecks and ReLU6.

Layer for layer as torchvision / keras.applications (3,504,872 parameters at alpha 1.0, 1000 classes). The last 1x1
conv keeps 1280 channels for alpha <= 1 (the paper and Keras); it is scaled only for alpha > 1.
The inverted residual block is `mobilejax.models.blocks.InvertedResidual` (shared with MobileNetV3).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from mobilejax.layers import check_activation, make_divisible
from mobilejax.models.base import Classifier, small_input_strides
from mobilejax.models.blocks import InvertedResidual, conv_bn

# (expansion t, output channels c, repeats n, first stride s): the paper's Table 2. t=None means the model's
# `expansion` knob (6 in the paper); the first block always has t=1.
SETTINGS = ((1, 16, 1, 1), (None, 24, 2, 2), (None, 32, 3, 2), (None, 64, 4, 2), (None, 96, 3, 1),
            (None, 160, 3, 2), (None, 320, 1, 1))


class MobileNetV2(Classifier):
    expansion: float = 6.0
    round_nearest: int = 8
    activation: str = "relu6"
    bottleneck_activation: str = "linear"
    residual: bool = True
    kernel_size: int = 3
    last_channels: int = 1280

    def __post_init__(self):
        super().__post_init__()
        check_activation(self.activation)
        check_activation(self.bottleneck_activation, "bottleneck_activation")
        if not self.expansion > 0:
            raise ValueError(f"expansion must be > 0, got {self.expansion!r}")
        self.check_positive("round_nearest", "last_channels")

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        self.check_input(x)
        ch = lambda c: make_divisible(c * self.alpha, self.round_nearest)  # noqa: E731
        c_in = ch(32)
        x = conv_bn(x, c_in, 3, self.stem_stride, act=self.activation, train=train, name="stem", ls=self.ls)
        layers = [(self.expansion if t is None else t, c, s if j == 0 else 1)
                  for t, c, n, s in SETTINGS for j in range(n)]
        strides = small_input_strides([s for _, _, s in layers], self.small_input)
        for i, ((t, c, _), s) in enumerate(zip(layers, strides)):
            x = InvertedResidual(ch(c), int(round(c_in * t)), s, self.kernel_size, self.activation,
                                 self.bottleneck_activation, residual=self.residual, ls=self.ls,
                                 name=f"blocks_{i}")(x, train)
            c_in = ch(c)
        last = make_divisible(self.last_channels * max(1.0, self.alpha), self.round_nearest)
        x = conv_bn(x, last, 1, 1, act=self.activation, train=train, name="head", ls=self.ls)
        x = jnp.mean(x, axis=(1, 2))
        return self.head(x, train)
