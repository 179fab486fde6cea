"""Evidently's drift verdicts from summaries of the current data instead of its raw values (pure, no Django).

A columnar engine summarises a large current column in one scan; these functions reach the verdict
`drift.judge` would reach on the raw values:

- value counts (categorical columns, and numerical columns with few distinct values): exact. The
  chi-square, Z and Jensen-Shannon tests only read counts; Kolmogorov-Smirnov and Wasserstein are exact
  on distinct values with their counts too.
- a fine histogram on bins derived from the reference (count and sum of the current values per bin):
  the Wasserstein distance with each bin's mass at its mean. Between two reference values the
  reference CDF is constant, so a bin holding no reference value whose current mass stays on one side of
  it contributes exactly what its mean says; the error is confined to bins where the two CDFs cross, a
  fraction of one bin's width each.
- the current counts at or below, and below, each distinct reference value: the exact two-sample K-S
  statistic (between two reference values the reference CDF is constant and the current one monotone,
  so the supremum is reached at the ends of the interval), with scipy's p-value for those sample sizes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from monitoring import drift
from monitoring.drift import ColumnProfile, ColumnVerdict

# scipy's ks_2samp(method="auto") is exact up to this many values in either sample, asymptotic beyond.
KS_EXACT_MAX_ROWS = 10_000


@dataclass(frozen=True)
class ReferenceCurve:
    """The reference's distinct values, its CDF at them and the integral of its CDF up to them."""

    values: np.ndarray
    cdf: np.ndarray
    integral: np.ndarray
    sorted_values: np.ndarray

    @classmethod
    def of(cls, profile: ColumnProfile) -> ReferenceCurve:
        ordered = profile.sorted_values
        assert ordered is not None
        # Already sorted: the distinct values are where the value changes, no sort needed.
        last_of_run = np.append(np.flatnonzero(np.diff(ordered)), ordered.size - 1)
        values = ordered[last_of_run]
        cdf = (last_of_run + 1) / ordered.size
        integral = np.concatenate([[0.0], np.cumsum(cdf[:-1] * np.diff(values))])
        return cls(values, cdf, integral, ordered)

    def integrated(self, x: np.ndarray) -> np.ndarray:
        """The integral of the reference CDF from minus infinity to each x."""
        position = np.searchsorted(self.values, x, side="right") - 1
        inside = position >= 0
        at = np.clip(position, 0, None)
        return np.where(inside, self.integral[at] + self.cdf[at] * (x - self.values[at]), 0.0)


def frequency_verdict(profile: ColumnProfile, values: Sequence[object], counts: np.ndarray) -> ColumnVerdict | None:
    """The verdict from the counts of the current column's distinct non-missing values."""
    assert profile.values is not None
    keep = np.asarray(counts) > 0
    present, counts = pd.Index(list(values))[keep], np.asarray(counts)[keep]
    if counts.size == 0:
        return None
    position = profile.values.get_indexer(present)
    new = position < 0
    position[new] = len(profile.values) + np.arange(int(new.sum()))
    current_counts = np.zeros(len(profile.values) + int(new.sum()), dtype=np.int64)
    current_counts[position] = counts
    labels = list(profile.values) + list(present[new])
    current = drift.CurrentColumn(codes=None, labels=labels, numbers=None)
    return drift.frequency_test(profile, current, current_counts, len(labels))


def weighted_verdict(
    profile: ColumnProfile, curve: ReferenceCurve, points: np.ndarray, weights: np.ndarray
) -> ColumnVerdict | None:
    """A numerical column's verdict from its distinct current values and their counts (exact)."""
    order = np.argsort(points, kind="stable")
    points, weights = np.asarray(points, dtype=float)[order], np.asarray(weights, dtype=np.int64)[order]
    keep = weights > 0
    points, weights = points[keep], weights[keep]
    if points.size == 0:
        return None
    if profile.values is not None:
        distinct = len(profile.values) + int((profile.values.get_indexer(pd.Index(points)) < 0).sum())
        if distinct <= drift.FEW_DISTINCT_VALUES:
            return frequency_verdict(profile, list(points), weights)
    if profile.rows <= drift.SMALL_REFERENCE_ROWS:
        cumulative = np.concatenate([[0], np.cumsum(weights)])
        at_or_below = cumulative[np.searchsorted(points, curve.values, side="right")]
        below = cumulative[np.searchsorted(points, curve.values, side="left")]
        return ks_verdict(profile, curve, curve.values, at_or_below, below, int(cumulative[-1]))
    return wasserstein_verdict(profile, curve, points, weights)


def wasserstein_verdict(
    profile: ColumnProfile, curve: ReferenceCurve, points: np.ndarray, weights: np.ndarray
) -> ColumnVerdict | None:
    """Wasserstein distance (normed) of the current mass `weights` at sorted `points` from the reference."""
    if int(np.sum(weights)) == 0:
        return None
    distance = wasserstein(curve, points, weights)
    score = distance / max(profile.std, drift.WASSERSTEIN_MIN_NORM)
    return ColumnVerdict(
        drift.WASSERSTEIN, score, drift.DISTANCE_THRESHOLD, score >= drift.DISTANCE_THRESHOLD, drift.NUMERICAL
    )


def wasserstein(curve: ReferenceCurve, points: np.ndarray, weights: np.ndarray) -> float:
    """`scipy.stats.wasserstein_distance(reference, points, v_weights=weights)` for sorted distinct points.

    The integral of |F_ref - F_cur| between consecutive points, where F_cur is a constant c: F_ref is
    non-decreasing, so it is below c up to the first reference value where it reaches c and above after,
    and each part is read off the integral of F_ref. Linear in the points, no sort of the reference.
    """
    weights = np.asarray(weights, dtype=np.int64)
    total = int(weights.sum())
    reference_rows = curve.sorted_values.size
    cumulative = np.cumsum(weights)[:-1]
    left, right = points[:-1], points[1:]
    # The first reference rank whose CDF reaches c = cumulative / total, in integers: k / n >= cum / total.
    rank = -((-cumulative * reference_rows) // total)
    crossing = np.where(rank >= 1, curve.sorted_values[np.clip(rank - 1, 0, reference_rows - 1)], -np.inf)
    crossing = np.where(rank > reference_rows, np.inf, crossing)
    crossing = np.clip(crossing, left, right)
    level = cumulative / total
    integral_left, integral_cross, integral_right = (
        curve.integrated(left),
        curve.integrated(crossing),
        curve.integrated(right),
    )
    inner = (level * (crossing - left) - (integral_cross - integral_left)) + (
        (integral_right - integral_cross) - level * (right - crossing)
    )
    before = float(curve.integrated(points[:1])[0])
    last, top = float(points[-1]), float(curve.values[-1])
    after = (
        (top - last) - float(curve.integrated(np.array([top]))[0] - curve.integrated(points[-1:])[0])
        if last < top
        else 0.0
    )
    return float(before + inner.sum() + after)


def ks_verdict(
    profile: ColumnProfile,
    curve: ReferenceCurve,
    grid: np.ndarray,
    at_or_below: np.ndarray,
    below: np.ndarray,
    current_rows: int,
) -> ColumnVerdict | None:
    """The K-S verdict from the current counts at or below and below each grid value (a superset of the
    reference's distinct values)."""
    if current_rows == 0:
        return None
    positions = np.searchsorted(grid, curve.values)
    assert np.array_equal(grid[positions], curve.values), "the grid must hold every reference value"
    reference_rows = curve.sorted_values.size
    reference_cdf = np.searchsorted(curve.sorted_values, curve.values, side="right") / reference_rows
    reference_before = np.concatenate([[0.0], reference_cdf[:-1]])
    differences = np.concatenate(
        [
            reference_cdf - at_or_below[positions] / current_rows,
            reference_before - below[positions] / current_rows,
            [0.0],  # at the largest value of both samples both CDFs are 1
        ]
    )
    minimum = float(np.clip(-differences.min(), 0, 1))
    maximum = float(differences.max())
    statistic = minimum if minimum > maximum else maximum
    p_value = ks_p_value(statistic, reference_rows, current_rows)
    return ColumnVerdict(
        drift.KS, p_value, drift.P_VALUE_THRESHOLD, p_value <= drift.P_VALUE_THRESHOLD, drift.NUMERICAL
    )


def ks_p_value(statistic: float, first_rows: int, second_rows: int) -> float:
    """scipy's `ks_2samp` two-sided p-value with method "auto", for samples too large for its exact method."""
    if max(first_rows, second_rows) <= KS_EXACT_MAX_ROWS:
        raise ValueError("Samples this small are judged on their raw values.")
    larger, smaller = sorted([float(first_rows), float(second_rows)], reverse=True)
    effective = larger * smaller / (larger + smaller)
    return float(np.clip(stats.kstwo.sf(statistic, np.round(effective)), 0, 1))
