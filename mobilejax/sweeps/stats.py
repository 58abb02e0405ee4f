"""Statistics of replicated trials: mean and sample standard deviation, and the difference of two trials' means
with a Welch's t confidence interval (unequal variances; Welch–Satterthwaite degrees of freedom)."""
from __future__ import annotations

import math
from typing import Sequence


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation); std is None for fewer than 2 values, both None for none."""
    n = len(values)
    if n == 0:
        return None, None
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def welch_ci(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """mean(a) - mean(b) with its `confidence` interval by Welch's t: {"diff", "lo", "hi", "dof", "se"}.
    Needs at least 2 values on each side."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's interval needs >= 2 values per side, got {len(a)} and {len(b)}")
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    va, vb = sa ** 2 / len(a), sb ** 2 / len(b)
    se = math.sqrt(va + vb)
    diff = ma - mb
    if se == 0.0:  # identical values within each side: the interval is the point
        return {"diff": diff, "lo": diff, "hi": diff, "dof": float(len(a) + len(b) - 2), "se": 0.0}
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + confidence / 2, dof) * se
    return {"diff": diff, "lo": diff - half, "hi": diff + half, "dof": dof, "se": se}


def compare(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """The interval (when both sides have >= 2 values) and a verdict: "A > B" when the interval lies above 0,
    "A < B" below 0, otherwise "not resolved" with the reason."""
    if len(a) < 2 or len(b) < 2:
        mean_a, mean_b = mean_std(a)[0], mean_std(b)[0]
        diff = mean_a - mean_b if mean_a is not None and mean_b is not None else None
        return {"diff": diff, "lo": None, "hi": None, "dof": None, "n_a": len(a), "n_b": len(b),
                "verdict": f"not resolved (n = {len(a)} vs {len(b)}; needs >= 2 runs each)"}
    ci = welch_ci(a, b, confidence)
    if ci["lo"] > 0:
        verdict = "A > B"
    elif ci["hi"] < 0:
        verdict = "A < B"
    else:
        verdict = "not resolved (the interval contains 0)"
    return {**ci, "n_a": len(a), "n_b": len(b), "verdict": verdict}
