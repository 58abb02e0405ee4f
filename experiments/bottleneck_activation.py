"""Ablation 3, linear vs. ReLU6 bottlenecks in MobileNetV2 (MobileNetV2 Fig. 6a: the linear bottleneck is better),
at width 0.5 (the fast recipe's model; width 1.0 costs 2.3x the time per trial).

    mobilejax sweep experiments/bottleneck_activation.py --workdir runs/sweeps/bottleneck_activation
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import BASE, FIXED, SEEDS  # noqa: E402


def get_config():
    return {
        "base": BASE,
        "fixed": {**FIXED, "model.name": "mobilenet_v2", "model.alpha": 0.5},
        "product": {"model.bottleneck_activation": ["linear", "relu6"]},
        "seeds": SEEDS,
        "comparisons": [{"name": "linear vs relu6 bottleneck", "a": {"model.bottleneck_activation": "linear"},
                         "b": {"model.bottleneck_activation": "relu6"}}],
    }
