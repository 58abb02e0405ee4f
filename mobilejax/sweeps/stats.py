"""Statistics of replicated trials: mean and sample standard deviation, and the difference of two trials' means
with a Welch's t confidence interval (unequal variances; Welch–Satterthwaite degrees of freedom) and its verdict.

Plain Python on lists of floats; only the Student t quantile comes from scipy."""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence


class Interval(NamedTuple):
    """mean(a) - mean(b) and its confidence interval [lo, hi]; dof: Welch–Satterthwaite degrees of freedom."""
    diff: float
    lo: float
    hi: float
    dof: float


def mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, sample standard deviation (n - 1)); std is None for fewer than 2 values, both None for none."""
    n = len(values)
    if n == 0:
        return None, None
    mean = sum(values) / n
    if n < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def welch_ci(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Interval:
    """(diff, lo, hi, dof): mean(a) - mean(b) with its `confidence` interval by Welch's t. Needs >= 2 values per side.

    When neither side varies, the standard error is 0 and the interval is the point itself (dof n_a + n_b - 2)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's interval needs >= 2 values per side, got {len(a)} and {len(b)}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    diff = ma - mb
    half, dof = _welch_half_width(sa, len(a), sb, len(b), confidence)
    return Interval(diff, diff - half, diff + half, dof)


def _welch_half_width(sa: float, na: int, sb: float, nb: int, confidence: float) -> tuple[float, float]:
    """(half-width, Welch–Satterthwaite dof) of the interval of a difference of means with sample stds sa, sb over
    na, nb values; (0, na + nb - 2) when neither side varies."""
    from scipy import stats

    va, vb = sa ** 2 / na, sb ** 2 / nb  # squared standard errors of the two means
    if va + vb == 0.0:
        return 0.0, float(na + nb - 2)
    dof = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    return float(stats.t.ppf(0.5 + confidence / 2, dof)) * math.sqrt(va + vb), dof


def runs_to_resolve(a: Sequence[float], b: Sequence[float], confidence: float = 0.95, most: int = 20) -> int | None:
    """An estimate for planning: the fewest runs per side (>= the larger current n) whose Welch interval would
    exclude 0 if more runs kept both sides' present means and sample standard deviations; None when the means are
    equal, a side has fewer than 2 values, or it takes more than `most` runs."""
    if len(a) < 2 or len(b) < 2:
        return None
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    if ma == mb:
        return None
    for n in range(max(len(a), len(b)), most + 1):
        if _welch_half_width(sa, n, sb, n, confidence)[0] < abs(ma - mb):
            return n
    return None


def verdict(interval: Interval | None, n_a: int, n_b: int) -> str:
    """"A > B" when the interval lies above 0, "A < B" below 0, else "not resolved (<why>)"."""
    if interval is None or n_a < 2 or n_b < 2:
        return f"not resolved (n = {n_a} vs {n_b}; needs >= 2 finished runs each)"
    if interval.lo > 0:
        return "A > B"
    if interval.hi < 0:
        return "A < B"
    return "not resolved (the interval contains 0)"


def compare(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """Both sides' n and means, the difference of means, its interval (None with < 2 values on a side), verdict and,
    where it is not resolved, `runs_to_resolve`'s estimate: {"n_a", "n_b", "mean_a", "mean_b", "diff", "lo", "hi",
    "dof", "verdict", "runs_to_resolve"}."""
    mean_a, mean_b = mean_std(a)[0], mean_std(b)[0]
    interval = welch_ci(a, b, confidence) if len(a) >= 2 and len(b) >= 2 else None
    diff = mean_a - mean_b if mean_a is not None and mean_b is not None else None
    return {"n_a": len(a), "n_b": len(b), "mean_a": mean_a, "mean_b": mean_b, "diff": diff,
            "lo": interval.lo if interval else None, "hi": interval.hi if interval else None,
            "dof": interval.dof if interval else None, "verdict": verdict(interval, len(a), len(b)),
            "runs_to_resolve": (runs_to_resolve(a, b, confidence) if interval and interval.lo <= 0 <= interval.hi
                                else None)}
