"""What every model family shares: the layer settings passed down to blocks, the classifier base class (common
fields, validation, the classification head) and the one small-input rule."""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from mobilejax.ops import DEPTHWISE_IMPLS

Dtype = Any


@dataclasses.dataclass(frozen=True)
class LayerSettings:
    """Settings every conv-BN layer of a model shares (passed to blocks as one hashable field)."""
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    depthwise_impl: str = "auto"
    dtype: Dtype | None = None
    padding: str = "symmetric"
    freeze_bn: bool = False


def small_input_strides(strides: Sequence[int], small_input: bool) -> list[int]:
    """The small-input (CIFAR) rule of every family: with `small_input`, the first stride-2 downsampling after the
    stem runs at stride 1 (the stem itself is at stride 1 too, see `Classifier.stem_stride`), so a 32x32 input is
    reduced 8x instead of 32x. `strides` are a network's block strides in order."""
    strides = list(strides)
    if small_input and 2 in strides:
        strides[strides.index(2)] = 1
    return strides


class Classifier(nn.Module):
    """Fields and checks every model family shares (a base class, not a model)."""
    num_classes: int = 1000
    alpha: float = 1.0
    dropout: float = 0.2
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    small_input: bool = False
    depthwise_impl: str = "auto"
    padding: str = "symmetric"  # "same": TensorFlow/Keras padding (for weights imported from Keras)
    freeze_bn: bool = False  # True: BatchNorm uses its running statistics in training too (a frozen backbone)
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
        if self.padding not in ("symmetric", "same"):
            raise ValueError(f"unknown padding {self.padding!r}; allowed: symmetric (torchvision), same (Keras)")
        super().__post_init__()

    @property
    def ls(self) -> LayerSettings:
        return LayerSettings(self.bn_momentum, self.bn_epsilon, self.depthwise_impl, self.dtype, self.padding,
                             self.freeze_bn)

    @property
    def stem_stride(self) -> int:
        return 1 if self.small_input else 2

    @property
    def total_stride(self) -> int:
        """How much the network reduces height and width (the smallest input it accepts)."""
        return 8 if self.small_input else 32

    def head(self, x: jax.Array, train: bool) -> jax.Array:
        """Dropout -> linear classifier (`classifier`), logits in float32."""
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier")(x)
        return x.astype(jnp.float32)

    def check_input(self, x: jax.Array) -> None:
        model, total_stride = type(self).__name__, self.total_stride
        if x.ndim != 4:
            raise ValueError(f"{model} expects NHWC images (4-D), got shape {tuple(x.shape)}")
        h, w = x.shape[1], x.shape[2]
        if min(h, w) < total_stride:
            hint = "" if self.small_input else " (small_input=True lowers this to 8, for 32x32 data)"
            raise ValueError(f"resolution {h}x{w} is too small for {model}: its strides reduce the input "
                             f"{total_stride}x, so height and width must be at least {total_stride}{hint}")
