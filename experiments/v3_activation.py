"""Ablation 4, the nonlinearity of MobileNetV3-Small (MobileNetV3 Table 5): every activation of the network set to
ReLU, hard-swish or swish (the paper's default mixes ReLU and hard-swish by layer). Table 5 compares ReLU with
hard-swish; the paper's text says hard-swish matches swish. ReLU6 (no paper comparison here) was dropped from the grid
to fit one session's CPU budget.

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
        "product": {"model.activation": ["relu", "hard_swish", "swish"]},
        "seeds": SEEDS,
        "comparisons": [
            {"name": "hard_swish vs relu", "a": {"model.activation": "hard_swish"}, "b": {"model.activation": "relu"}},
            {"name": "swish vs relu", "a": {"model.activation": "swish"}, "b": {"model.activation": "relu"}},
            {"name": "hard_swish vs swish", "a": {"model.activation": "hard_swish"},
             "b": {"model.activation": "swish"}},
        ],
    }
