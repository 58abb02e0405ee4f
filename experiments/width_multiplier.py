"""Ablation 1, width multiplier (MobileNetV1 Table 6, MobileNetV2 Figure 5, its width-multiplier curve):
alpha in {0.25, 0.5, 1.0} for MobileNetV1 and MobileNetV2 on CIFAR-10 (see experiments/_common.py); the paper's
claim is that accuracy falls smoothly as the width shrinks, so each narrower width is compared with the next wider.

    mobilejax sweep experiments/width_multiplier.py --workdir runs/sweeps/width_multiplier
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import BASE, FIXED, SEEDS  # noqa: E402


def get_config():
    return {
        "base": BASE,
        "fixed": dict(FIXED),
        "product": {"model.name": ["mobilenet_v1", "mobilenet_v2"], "model.alpha": [0.25, 0.5, 1.0]},
        "seeds": SEEDS,
        "comparisons": [
            {"name": f"{m} width {wide} vs {narrow}", "a": {"model.name": m, "model.alpha": wide},
             "b": {"model.name": m, "model.alpha": narrow}}
            for m in ("mobilenet_v1", "mobilenet_v2") for wide, narrow in ((1.0, 0.5), (0.5, 0.25))],
    }
