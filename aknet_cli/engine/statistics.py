"""Uncertainty of accuracies: the interval every printed top-1 carries, and paired comparisons.

* **One model**: top-1 is a binomial proportion over clips; its 95% interval is Wilson's score
  interval (it stays inside [0, 1] and keeps its coverage near 0% and 100%, where the normal
  approximation does not).
* **Two models on the same clips**: their difference is paired (each clip is seen by both),
  so its interval comes from a paired bootstrap over clips (percentile method, seeded:
  the same inputs give the same interval), and McNemar's exact test gives the p-value of
  "the two are equally accurate" from the clips exactly one of them gets right.
* **Seeds**: mean and sample standard deviation over training seeds.

All accuracies here are fractions in [0, 1]; callers print them in percent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
RESAMPLES = 10_000
SEED = 0


def wilson_interval(hits: int, n: int, *, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of ``hits / n``; ``(nan, nan)`` for ``n == 0``."""
    if n == 0:
        return math.nan, math.nan
    from scipy.stats import binomtest

    ci = binomtest(int(hits), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


@dataclass(frozen=True)
class PairedComparison:
    """Model A against model B on the same clips (fractions; ``difference`` = A − B)."""

    difference: float
    low: float
    high: float
    a_only: int  # clips A gets right and B wrong
    b_only: int  # clips B gets right and A wrong
    p_value: float  # McNemar's exact test (two-sided)
    clips: int
    level: float = LEVEL
    method: str = "paired bootstrap over clips (percentile), McNemar exact test"

    def as_dict(self, *, percent: bool = True, digits: int = 2) -> dict:
        scale = 100.0 if percent else 1.0
        return {"difference": round(scale * self.difference, digits), "ci": [round(scale * self.low, digits),
                                                                              round(scale * self.high, digits)],
                "level": self.level, "a_only": self.a_only, "b_only": self.b_only,
                "mcnemar_p": float(f"{self.p_value:.4g}"), "clips": self.clips, "method": self.method}


def _correct(values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"expected one value per clip, got shape {array.shape}")
    return array


def paired_bootstrap(a, b, *, level: float = LEVEL, resamples: int = RESAMPLES,
                     seed: int = SEED) -> tuple[float, float, float]:
    """``(mean(a − b), low, high)``: a percentile bootstrap interval of the mean paired difference.

    ``a`` and ``b`` hold one value per clip (1/0 correctness, or a per-clip mean over seeds);
    clip ``i`` of ``a`` and of ``b`` are resampled together.
    """
    a, b = _correct(a), _correct(b)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in length: {len(a)} and {len(b)}")
    diff = a - b
    if len(diff) == 0:
        return math.nan, math.nan, math.nan
    if np.all(diff == diff[0]):  # every resample gives the same mean
        return float(diff[0]), float(diff[0]), float(diff[0])
    from scipy.stats import bootstrap

    result = bootstrap((diff,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile",
                       vectorized=True, random_state=np.random.default_rng(seed))
    return float(diff.mean()), float(result.confidence_interval.low), float(result.confidence_interval.high)


def mcnemar_exact(a, b) -> tuple[int, int, float]:
    """``(a_only, b_only, p)``: McNemar's exact two-sided test on 1/0 correctness per clip.

    Under "equally accurate", each discordant clip is A's or B's with probability 1/2, so
    ``a_only`` is Binomial(a_only + b_only, 1/2); ``p = 1`` when no clip is discordant.
    """
    a, b = _correct(a).astype(bool), _correct(b).astype(bool)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if a_only + b_only == 0:
        return a_only, b_only, 1.0
    from scipy.stats import binomtest

    return a_only, b_only, float(binomtest(a_only, a_only + b_only, 0.5).pvalue)


def compare_paired(a, b, *, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = SEED) -> PairedComparison:
    """A against B on the same clips: the difference with its interval and McNemar's p."""
    diff, low, high = paired_bootstrap(a, b, level=level, resamples=resamples, seed=seed)
    a_only, b_only, p = mcnemar_exact(a, b)
    return PairedComparison(difference=diff, low=low, high=high, a_only=a_only, b_only=b_only, p_value=p,
                            clips=len(_correct(a)), level=level)


def mean_std(values) -> tuple[float, float, int]:
    """``(mean, sample standard deviation, n)`` over seeds (std ``nan`` for a single seed)."""
    array = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(array) == 0:
        return math.nan, math.nan, 0
    std = float(array.std(ddof=1)) if len(array) > 1 else math.nan
    return float(array.mean()), std, len(array)
