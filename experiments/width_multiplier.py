"""Ablation 1, width multiplier (MobileNetV1 Table 6, MobileNetV2 Fig. 6a's width axis):
alpha in {0.25, 0.5, 0.75, 1.0} for MobileNetV1 and MobileNetV2 on CIFAR-10 (see experiments/_common.py).

    mobilejax sweep experiments/width_multiplier.py --workdir runs/sweeps/width_multiplier
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import BASE, FIXED  # noqa: E402


def get_config():
    return {
        "base": BASE,
        "fixed": dict(FIXED),
        "product": {"model.name": ["mobilenet_v1", "mobilenet_v2"], "model.alpha": [0.25, 0.5, 0.75, 1.0]},
    }
