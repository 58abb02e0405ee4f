"""ShuffleNetV2 (Ma et al., 2018): channel split, channel shuffle, and balanced-width branches.

Layer for layer as torchvision's shufflenet_v2_x{0_5,1_0,1_5,2_0} (1,366,792 / 2,278,604 / 3,503,624 / 7,393,996
parameters, 1000 classes); `alpha` selects the width and must be one of 0.5, 1.0, 1.5, 2.0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from mobilejax.layers import LayerSettings, ModelCommon, channel_shuffle, channel_split, check_activation, conv_bn

# alpha -> (stem, stage 2, stage 3, stage 4, last conv) output channels (the paper's Table 5).
WIDTHS = {0.5: (24, 48, 96, 192, 1024), 1.0: (24, 116, 232, 464, 1024), 1.5: (24, 176, 352, 704, 1024),
          2.0: (24, 244, 488, 976, 2048)}
REPEATS = (4, 8, 4)


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


class ShuffleNetV2(ModelCommon):
    dropout: float = 0.0  # torchvision has none
    shuffle: bool = True
    groups: int = 2
    activation: str = "relu"
    kernel_size: int = 3

    def __post_init__(self):
        if float(self.alpha) not in WIDTHS:
            raise ValueError(f"unsupported ShuffleNetV2 width alpha={self.alpha!r}; allowed: "
                             f"{', '.join(str(a) for a in WIDTHS)}")
        check_activation(self.activation)
        super().__post_init__()

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        self.check_input(x, 8 if self.small_input else 32)
        widths = WIDTHS[float(self.alpha)]
        x = conv_bn(x, widths[0], 3, 1 if self.small_input else 2, act=self.activation, train=train, name="stem",
                    ls=self.ls)
        if not self.small_input:
            x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
        i = 0
        for c, n in zip(widths[1:4], REPEATS):
            for j in range(n):
                x = ShuffleUnit(c, 2 if j == 0 else 1, self.kernel_size, self.activation, self.shuffle, self.groups,
                                self.ls, name=f"blocks_{i}")(x, train)
                i += 1
        x = conv_bn(x, widths[4], 1, 1, act=self.activation, train=train, name="head", ls=self.ls)
        x = jnp.mean(x, axis=(1, 2))
        return self.head(x, train)
