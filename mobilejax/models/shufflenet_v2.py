"""ShuffleNetV2 (Ma et al., 2018): channel split, channel shuffle, and balanced-width branches.

Layer for layer as torchvision's shufflenet_v2_x{0_5,1_0,1_5,2_0} (1,366,792 / 2,278,604 / 3,503,624 / 7,393,996
parameters, 1000 classes); `alpha` selects the width and must be one of 0.5, 1.0, 1.5, 2.0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from mobilejax.layers import check_activation
from mobilejax.models.base import Classifier, small_input_strides
from mobilejax.models.blocks import ShuffleUnit, conv_bn
from mobilejax.ops import max_pool_3x3_s2

# alpha -> (stem, stage 2, stage 3, stage 4, last conv) output channels (the paper's Table 5).
WIDTHS = {0.5: (24, 48, 96, 192, 1024), 1.0: (24, 116, 232, 464, 1024), 1.5: (24, 176, 352, 704, 1024),
          2.0: (24, 244, 488, 976, 2048)}
REPEATS = (4, 8, 4)


class ShuffleNetV2(Classifier):
    dropout: float = 0.0  # torchvision has none
    shuffle: bool = True
    groups: int = 2
    activation: str = "relu"
    kernel_size: int = 3

    def __post_init__(self):
        super().__post_init__()
        if float(self.alpha) not in WIDTHS:
            raise ValueError(f"unsupported ShuffleNetV2 width alpha={self.alpha!r}; allowed: "
                             f"{', '.join(str(a) for a in WIDTHS)}")
        check_activation(self.activation)
        self.check_positive("groups")

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        self.check_input(x)
        widths = WIDTHS[float(self.alpha)]
        x = conv_bn(x, widths[0], 3, self.stem_stride, act=self.activation, train=train, name="stem", ls=self.ls)
        # the first downsampling after the stem is the max pool; under the small-input rule it is dropped
        pool_stride, *strides = small_input_strides([2] + [2 if j == 0 else 1 for n in REPEATS for j in range(n)],
                                                    self.small_input)
        if pool_stride == 2:
            x = max_pool_3x3_s2(x, self.ls.depthwise_impl)  # CPU fast path under the same switch as depthwise
        channels = [c for c, n in zip(widths[1:4], REPEATS) for _ in range(n)]
        for i, (c, s) in enumerate(zip(channels, strides)):
            x = ShuffleUnit(c, s, self.kernel_size, self.activation, self.shuffle, self.groups, self.ls,
                            name=f"blocks_{i}")(x, train)
        x = conv_bn(x, widths[4], 1, 1, act=self.activation, train=train, name="head", ls=self.ls)
        x = jnp.mean(x, axis=(1, 2))
        return self.head(x, train)
