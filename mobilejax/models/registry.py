"""Model registry: the known names, `create_model(name, **knobs)`, and each family's knobs (with their types, from
which `mobilejax.config` derives the `config.model.*` fields). Unknown names and options fail with the known ones."""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

from flax import linen as nn

from mobilejax.models.base import KNOB_TYPES, knob_type
from mobilejax.models.mobilenet_v1 import MobileNetV1
from mobilejax.models.mobilenet_v2 import MobileNetV2
from mobilejax.models.mobilenet_v3 import MobileNetV3
from mobilejax.models.shufflenet_v2 import ShuffleNetV2

MODELS: dict[str, Callable[..., nn.Module]] = {
    "mobilenet_v1": MobileNetV1,
    "mobilenet_v2": MobileNetV2,
    "mobilenet_v3_large": functools.partial(MobileNetV3, variant="large"),
    "mobilenet_v3_small": functools.partial(MobileNetV3, variant="small"),
    "shufflenet_v2": ShuffleNetV2,
}
# Fields that are set by the training code, not by a config's model section.
NOT_KNOBS = ("parent", "name", "num_classes", "dtype")


def model_names() -> list[str]:
    return sorted(MODELS)


def model_class(name: str) -> type:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    ctor = MODELS[name]
    return ctor.func if isinstance(ctor, functools.partial) else ctor


def _fields(name: str) -> list[dataclasses.Field]:
    fixed = getattr(MODELS[name], "keywords", {}) if name in MODELS else {}
    return [f for f in dataclasses.fields(model_class(name)) if f.name not in ("parent", "name")
            and f.name not in fixed]


def model_knobs(name: str) -> list[str]:
    """The keyword arguments `create_model(name, ...)` accepts."""
    return [f.name for f in _fields(name)]


def knob_types() -> dict[str, type]:
    """Every config knob of every family and its Python type (`alpha: float`, `small_input: bool`, ...)."""
    out: dict[str, type] = {}
    for name in model_names():
        for f in _fields(name):
            if f.name in NOT_KNOBS:
                continue
            base, _ = knob_type(f)
            if base not in KNOB_TYPES:
                raise TypeError(f"{name}.{f.name}: knob type {f.type!r} is not one of {', '.join(KNOB_TYPES)}")
            out.setdefault(f.name, KNOB_TYPES[base][0])
    return out


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model by registry name, e.g. `create_model("mobilenet_v3_small", num_classes=5, alpha=0.75)`."""
    knobs = model_knobs(name)  # fails listing the known names
    unknown = sorted(set(kwargs) - set(knobs))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for model {name!r}; allowed: {', '.join(knobs)}")
    return MODELS[name](**kwargs)


def create_model_from_config(model_config: Any, **overrides: Any) -> nn.Module:
    """Build from a config section {name, knob: value-or-None}: `None` keeps the family's default; a knob set for a
    family that has no such option is an error (never silently ignored). `overrides` (e.g. num_classes, dtype) win."""
    cfg = dict(model_config.items() if hasattr(model_config, "items") else model_config)
    name = cfg.pop("name", None)
    if name is None:
        raise ValueError("the model config has no 'name'; known models: " + ", ".join(model_names()))
    knobs = set(model_knobs(name))  # fails listing known names
    kwargs = {}
    for k, v in cfg.items():
        if v is None:
            continue
        if k not in knobs:
            raise ValueError(f"config.model.{k}={v!r} is not an option of {name}; its options: "
                             f"{', '.join(sorted(knobs))}")
        kwargs[k] = v
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return create_model(name, **kwargs)
