"""MobileNetV3 Large and Small (Howard et al., 2019): squeeze-excite and hard-swish on inverted residuals.

Layer for layer as torchvision (5,483,032 / 2,542,856 parameters at alpha 1.0, 1000 classes). `minimalistic=True`
is the Keras/TF "minimalistic" variant: no squeeze-excite, no hard-swish (ReLU everywhere), 3x3 kernels only.
`activation="relu"` (or any registry name) replaces every nonlinearity of the network (paper Table 5 ablation);
the squeeze-excite's own ReLU and hard-sigmoid gate stay.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from mobilejax.layers import check_activation, get_activation, make_divisible
from mobilejax.models.base import Classifier, small_input_strides
from mobilejax.models.blocks import InvertedResidual, conv_bn

RE, HS = "relu", "hard_swish"
# (kernel, expanded, out, squeeze-excite, activation, stride): the paper's Tables 1 and 2.
LARGE = ((3, 16, 16, False, RE, 1), (3, 64, 24, False, RE, 2), (3, 72, 24, False, RE, 1),
         (5, 72, 40, True, RE, 2), (5, 120, 40, True, RE, 1), (5, 120, 40, True, RE, 1),
         (3, 240, 80, False, HS, 2), (3, 200, 80, False, HS, 1), (3, 184, 80, False, HS, 1),
         (3, 184, 80, False, HS, 1), (3, 480, 112, True, HS, 1), (3, 672, 112, True, HS, 1),
         (5, 672, 160, True, HS, 2), (5, 960, 160, True, HS, 1), (5, 960, 160, True, HS, 1))
SMALL = ((3, 16, 16, True, RE, 2), (3, 72, 24, False, RE, 2), (3, 88, 24, False, RE, 1),
         (5, 96, 40, True, HS, 2), (5, 240, 40, True, HS, 1), (5, 240, 40, True, HS, 1),
         (5, 120, 48, True, HS, 1), (5, 144, 48, True, HS, 1), (5, 288, 96, True, HS, 2),
         (5, 576, 96, True, HS, 1), (5, 576, 96, True, HS, 1))
VARIANTS = {"large": (LARGE, 1280), "small": (SMALL, 1024)}


class MobileNetV3(Classifier):
    variant: str = "large"
    se: bool = True
    activation: str | None = None  # None: the paper's ReLU / hard-swish placement
    minimalistic: bool = False
    kernel_size: int | None = None  # None: the paper's per-block kernels
    residual: bool = True
    se_gate: str = "hard_sigmoid"

    def __post_init__(self):
        super().__post_init__()
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown MobileNetV3 variant {self.variant!r}; allowed: {', '.join(VARIANTS)}")
        check_activation(self.activation)
        check_activation(self.se_gate, "se_gate")

    def _act(self, default: str) -> str:
        if self.activation is not None:
            return self.activation
        return RE if self.minimalistic else default

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        self.check_input(x)
        blocks, last_channels = VARIANTS[self.variant]
        ch = lambda c: make_divisible(c * self.alpha, 8)  # noqa: E731
        c_in, c_in_paper = ch(16), 16
        x = conv_bn(x, c_in, 3, self.stem_stride, act=self._act(HS), train=train, name="stem", ls=self.ls)
        strides = small_input_strides([b[-1] for b in blocks], self.small_input)
        for i, ((k, e, c, se, act, _), s) in enumerate(zip(blocks, strides)):
            if self.minimalistic:
                k, se = 3, False
            k = k if self.kernel_size is None else self.kernel_size
            # The expansion is a ratio of the block's input width (as in the TF reference and Keras), so at alpha != 1
            # the expanded width follows the rounded input width rather than rounding e * alpha on its own.
            expanded = make_divisible(c_in * e / c_in_paper, 8)
            se_channels = make_divisible(expanded // 4, 8) if (se and self.se) else 0
            x = InvertedResidual(ch(c), expanded, s, k, self._act(act), "linear", se_channels, self.se_gate,
                                 self.residual, self.ls, name=f"blocks_{i}")(x, train)
            c_in, c_in_paper = ch(c), c
        x = conv_bn(x, 6 * c_in, 1, 1, act=self._act(HS), train=train, name="head", ls=self.ls)
        x = jnp.mean(x, axis=(1, 2))
        last = make_divisible(last_channels * max(1.0, self.alpha), 8)  # kept for alpha < 1, as Keras
        x = nn.Dense(last, dtype=self.dtype, name="pre_logits")(x)
        x = get_activation(self._act(HS))(x)
        return self.head(x, train)
