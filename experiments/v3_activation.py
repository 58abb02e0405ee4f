"""Ablation 4, the nonlinearity of MobileNetV3-Small (MobileNetV3 Table 5): every activation of the network set to
ReLU, ReLU6, hard-swish or swish (the paper's default mixes ReLU and hard-swish by layer).

    mobilejax sweep experiments/v3_activation.py --workdir runs/sweeps/v3_activation
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import BASE, FIXED, SEEDS  # noqa: E402


def get_config():
    return {
        "base": BASE,
        "fixed": {**FIXED, "model.name": "mobilenet_v3_small", "model.alpha": 1.0},
        "product": {"model.activation": ["relu", "relu6", "hard_swish", "swish"]},
        "seeds": SEEDS,
        "comparisons": [{"name": f"{a} vs relu", "a": {"model.activation": a}, "b": {"model.activation": "relu"}}
                        for a in ("hard_swish", "swish", "relu6")],
    }
