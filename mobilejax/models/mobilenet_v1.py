"""MobileNetV1 (Howard et al., 2017): depthwise-separable convolutions and a width multiplier.

Layer for layer as keras.applications.MobileNet (4,231,976 trainable parameters at alpha 1.0, 224 px, 1000 classes).
`separable=False` replaces every depthwise + pointwise pair by one full convolution (paper Table 4).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from mobilejax.layers import check_activation, make_divisible
from mobilejax.models.base import Classifier, small_input_strides
from mobilejax.models.blocks import DepthwiseSeparable, conv_bn

# (output channels, stride) of the 13 depthwise-separable blocks.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
          (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class MobileNetV1(Classifier):
    dropout: float = 1e-3  # keras.applications default
    separable: bool = True
    activation: str = "relu6"
    kernel_size: int = 3
    round_nearest: int = 8

    def __post_init__(self):
        super().__post_init__()
        check_activation(self.activation)
        self.check_positive("round_nearest")

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        self.check_input(x)
        ch = lambda c: make_divisible(c * self.alpha, self.round_nearest)  # noqa: E731
        x = conv_bn(x, ch(32), 3, self.stem_stride, act=self.activation, train=train, name="stem", ls=self.ls)
        strides = small_input_strides([s for _, s in BLOCKS], self.small_input)
        for i, ((c, _), s) in enumerate(zip(BLOCKS, strides)):
            x = DepthwiseSeparable(ch(c), s, self.kernel_size, self.activation, self.separable, self.ls,
                                   name=f"blocks_{i}")(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return self.head(x, train)
