"""Ablation 3, linear vs. ReLU6 bottlenecks in MobileNetV2 (MobileNetV2 Fig. 6a), width 1.0.

    mobilejax sweep experiments/bottleneck_activation.py --workdir runs/sweeps/bottleneck_activation
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import BASE, FIXED  # noqa: E402


def get_config():
    return {
        "base": BASE,
        "fixed": {**FIXED, "model.name": "mobilenet_v2", "model.alpha": 1.0},
        "product": {"model.bottleneck_activation": ["linear", "relu6"]},
    }
