"""Intervals and paired tests, against independent computations: Wilson's closed form, hand
counted McNemar cases, and the exact distribution a bootstrap of 0/1 differences samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from aknet_cli.engine.statistics import compare_paired, mcnemar_exact, mean_std, paired_bootstrap, wilson_interval


def _wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (81, 263), (97, 120), (300, 600), (1, 1)])
def test_wilson_interval_is_the_closed_form(k, n):
    assert wilson_interval(k, n) == pytest.approx(_wilson_by_hand(k, n), abs=1e-9)


def test_wilson_interval_of_a_published_case():
    # Newcombe (1998), Statistics in Medicine 17:857, example 81/263: Wilson 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


@pytest.mark.parametrize("a_only,b_only,p", [
    (3, 0, 2 * 0.5 ** 3),                        # all three discordant clips A's: 2·(1/2)³
    (5, 1, 2 * (1 + 6) / 2 ** 6),                # P(X ≤ 1 | 6, 1/2), doubled
    (4, 4, 1.0), (0, 0, 1.0),
])
def test_mcnemar_exact_counts_by_hand(a_only, b_only, p):
    both, neither = 7, 2
    a = [1] * a_only + [0] * b_only + [1] * both + [0] * neither
    b = [0] * a_only + [1] * b_only + [1] * both + [0] * neither
    assert mcnemar_exact(a, b) == (a_only, b_only, pytest.approx(p))


def test_a_paired_bootstrap_of_zero_one_differences_samples_a_binomial():
    # 30 of 200 clips right for A only, the rest alike: each resample's mean difference is
    # Binomial(200, 0.15) / 200, so the percentile interval is that law's 2.5% and 97.5% points.
    n, k = 200, 30
    a = np.r_[np.ones(k), np.zeros(n - k)]
    b = np.zeros(n)
    diff, low, high = paired_bootstrap(a, b)
    assert diff == pytest.approx(k / n)
    expected = binom.ppf([0.025, 0.975], n, k / n) / n
    assert (low, high) == pytest.approx(tuple(expected), abs=1.5 / n)
    assert paired_bootstrap(a, b) == (diff, low, high)  # seeded: the same interval every time


def test_identical_predictions_differ_by_exactly_zero_and_lengths_must_match():
    same = [1, 0, 1, 1]
    result = compare_paired(same, same)
    assert (result.difference, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="differ in length"):
        paired_bootstrap([1, 0], [1])


def test_mean_and_sample_std_over_seeds():
    assert mean_std([70.0, 72.0, 74.0]) == (72.0, 2.0, 3)
    mean, std, n = mean_std([65.0])
    assert (mean, n) == (65.0, 1) and math.isnan(std)
    assert mean_std([None, 60.0, 62.0])[:2] == (61.0, pytest.approx(math.sqrt(2)))
