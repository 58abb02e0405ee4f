"""Ablation 2, depthwise-separable vs. full convolutions in MobileNetV1 (MobileNetV1 Table 4).

Run at width 0.25 (not the paper's 1.0): the full-convolution MobileNetV1 costs ~8x the MACs of the separable one
and only width 0.25 fits the CPU budget (see experiments/_common.py). The paper: full convolutions gain about 1 point
of ImageNet accuracy (71.7 vs 70.6%) for 8.6x the MACs and 7x the parameters.

10 epochs instead of the shared 6: at 6 epochs the separable MobileNetV1 0.25 (the paper's model) reached 78.3%
(seed 0), under the >= 80% bar for a baseline.

    mobilejax sweep experiments/separable_conv.py --workdir runs/sweeps/separable_conv
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import BASE, FIXED, SEEDS  # noqa: E402


def get_config():
    return {
        "base": BASE,
        "fixed": {**FIXED, "num_epochs": 10.0, "model.name": "mobilenet_v1", "model.alpha": 0.25},
        "product": {"model.separable": [True, False]},
        "seeds": SEEDS,
        "comparisons": [{"name": "full vs depthwise-separable convolutions", "a": {"model.separable": False},
                         "b": {"model.separable": True}}],
    }
