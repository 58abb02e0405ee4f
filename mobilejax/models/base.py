"""What every model family shares: the layer settings passed down to blocks, the classifier base class (common
fields, validation, the classification head) and the one small-input rule."""
from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn

from mobilejax.ops import DEPTHWISE_IMPLS

Dtype = Any


# A knob's annotation ("float", "int | None", ...) -> the values it accepts and how an error names them.
KNOB_TYPES = {"float": (float, "a number"), "int": (int, "an integer"), "bool": (bool, "True or False"),
              "str": (str, "a string")}
_ACCEPTS = {"float": numbers.Real, "int": numbers.Integral, "bool": bool, "str": str}


def knob_type(field: dataclasses.Field) -> tuple[str, bool]:
    """A model field's base type name ("float", "int", "bool", "str" or another) and whether it may be None."""
    parts = [p.strip() for p in str(field.type).split("|")]
    return parts[0], "None" in parts[1:]


def check_knob_types(module: nn.Module) -> None:
    """Every field annotated float / int / bool / str holds such a value (None only where the annotation allows it;
    a bool is not a number here, an integer is a float): `residual="no"` or `small_input=1` fails naming the knob
    instead of being taken as true."""
    for field in dataclasses.fields(module):
        base, optional = knob_type(field)
        value = getattr(module, field.name, None)
        if base not in KNOB_TYPES or (value is None and optional):
            continue
        if not isinstance(value, _ACCEPTS[base]) or (base != "bool" and isinstance(value, bool)):
            allowed = KNOB_TYPES[base][1] + (" or None" if optional else "")
            raise ValueError(f"{field.name} must be {allowed}, got {value!r}")


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
        """The checks every family shares; a family's own `__post_init__` calls this first, then checks its knobs."""
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, numbers.Real) or not self.alpha > 0:
            raise ValueError(f"alpha (width multiplier) must be a number > 0, got {self.alpha!r}")
        check_knob_types(self)
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.depthwise_impl not in DEPTHWISE_IMPLS:
            raise ValueError(f"unknown depthwise_impl {self.depthwise_impl!r}; allowed: {', '.join(DEPTHWISE_IMPLS)}")
        if self.padding not in ("symmetric", "same"):
            raise ValueError(f"unknown padding {self.padding!r}; allowed: symmetric (torchvision), same (Keras)")
        if not 0.0 <= self.bn_momentum <= 1.0:
            raise ValueError(f"bn_momentum must be in [0, 1], got {self.bn_momentum!r}")
        if not self.bn_epsilon > 0:
            raise ValueError(f"bn_epsilon must be > 0, got {self.bn_epsilon!r}")
        kernel = getattr(self, "kernel_size", None)  # every family has one (MobileNetV3's None: the paper's kernels)
        if kernel is not None and (kernel < 1 or kernel % 2 == 0):
            raise ValueError(f"kernel_size must be an odd integer >= 1 (3, 5, 7, ...), got {kernel!r}")
        super().__post_init__()

    def check_positive(self, *knobs: str) -> None:
        """Each named integer knob is >= 1."""
        for knob in knobs:
            if getattr(self, knob) < 1:
                raise ValueError(f"{knob} must be an integer >= 1, got {getattr(self, knob)!r}")

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
