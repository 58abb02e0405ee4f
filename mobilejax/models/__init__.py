"""The model families and their registry: `create_model(name, **knobs)` builds any of `model_names()`.

One file per family (`mobilenet_v1.py` ... `shufflenet_v2.py`) holding only its architecture table and assembly;
the blocks they share are in `blocks.py` (the inverted residual, the depthwise-separable pair, the shuffle unit),
the classifier base class and the small-input rule in `base.py`, the registry in `registry.py`.
"""
from mobilejax.models.mobilenet_v1 import MobileNetV1
from mobilejax.models.mobilenet_v2 import MobileNetV2
from mobilejax.models.mobilenet_v3 import MobileNetV3
from mobilejax.models.registry import (MODELS, create_model, create_model_from_config, knob_types, model_class,
                                       model_knobs, model_names)
from mobilejax.models.shufflenet_v2 import ShuffleNetV2

__all__ = ["MODELS", "create_model", "create_model_from_config", "knob_types", "model_class", "model_knobs",
           "model_names", "MobileNetV1", "MobileNetV2", "MobileNetV3", "ShuffleNetV2"]
