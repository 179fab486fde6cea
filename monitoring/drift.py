"""Per-column drift tests that reach Evidently 0.7's verdicts, from reference statistics computed once.

Evidently's `DataDriftPreset` (legacy `get_one_column_drift` with the default stat-test choice) decides,
for each column, after dropping missing and infinite values on both sides:

- reference with at most 1,000 values: a numerical column with more than 5 distinct values (reference
  and current together) gets the two-sample Kolmogorov-Smirnov test; any other column the chi-square
  test (more than 2 distinct values) or the two-proportion Z-test (2 or fewer). All are p-values with
  threshold 0.05; K-S drifts when p <= 0.05, chi-square and Z when p < 0.05.
- larger reference: a numerical column with more than 5 distinct values gets the Wasserstein distance
  divided by the reference standard deviation (at least 0.001); any other column the Jensen-Shannon
  distance of the value frequencies. Both drift when the distance >= 0.1.
- the dataset drifts when the share of drifted columns is >= 0.5.

Jensen-Shannon is computed on plain value frequencies with no fill for empty cells: Evidently calls
`get_binned_data(..., feel_zeroes=False)`, and its Sturges histogram branch (numerical columns with more
than 20 distinct reference values) is never reached by the default choice, which sends such columns to
Wasserstein. So no binning is needed here.

The reference side (sorted values, standard deviation, value counts) is computed once per column in a
`Profile`; each current column is encoded once per window (`CurrentColumn`), after which a slice costs
one gather, one sort of its own values and a merge with the sorted reference (numerical), or one
`np.bincount` (categorical).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

NUMERICAL = "numerical"
CATEGORICAL = "categorical"

# Evidently's labels for its stat tests, as its reports show them.
KS = "K-S p_value"
CHI_SQUARE = "chi-square p_value"
Z_TEST = "Z-test p_value"
WASSERSTEIN = "Wasserstein distance (normed)"
JENSEN_SHANNON = "Jensen-Shannon distance"
P_VALUE_TESTS = frozenset({KS, CHI_SQUARE, Z_TEST})

SMALL_REFERENCE_ROWS = 1000
FEW_DISTINCT_VALUES = 5
# Evidently types an integer column with at most this many distinct values as categorical.
INTEGER_CARDINALITY_LIMIT = 10
P_VALUE_THRESHOLD = 0.05
DISTANCE_THRESHOLD = 0.1
DATASET_DRIFT_SHARE = 0.5
WASSERSTEIN_MIN_NORM = 0.001


@dataclass(frozen=True)
class ColumnVerdict:
    test: str
    statistic: float
    threshold: float
    drifted: bool
    kind: str

    def as_dict(self) -> dict[str, str | float | bool]:
        return {
            "test": self.test,
            "statistic": self.statistic,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class ColumnProfile:
    """Reference statistics of one column.

    `values`/`counts` (distinct non-missing reference values and how often each occurs) exist for
    categorical columns and for numerical columns with at most 5 distinct values, the only numerical
    columns that can be judged on frequencies. `sorted_values`/`std` exist for numerical columns.
    """

    kind: str
    rows: int
    values: pd.Index | None
    counts: np.ndarray | None
    sorted_values: np.ndarray | None
    std: float


@dataclass(frozen=True)
class CurrentColumn:
    """A current column encoded once for the whole window, so that each slice only gathers rows.

    `codes` index `labels` (reference values first, then values the reference never had), -1 marks a
    missing value; `numbers` holds the values as floats with NaN for missing or infinite ones.
    """

    codes: np.ndarray | None
    labels: list[object]
    numbers: np.ndarray | None


def column_kind(reference: pd.Series) -> str:
    """The type Evidently's `infer_column_type` gives the column, text counted as categorical.

    Evidently types columns from the current data; here the reference decides, so that a slice cannot
    change a column's type. Free-text columns, which Evidently judges with a classifier, are treated
    as categorical.
    """
    if pd.api.types.is_bool_dtype(reference):
        return CATEGORICAL
    if pd.api.types.is_float_dtype(reference):
        return NUMERICAL
    if pd.api.types.is_integer_dtype(reference):
        return CATEGORICAL if reference.nunique() <= INTEGER_CARDINALITY_LIMIT else NUMERICAL
    return CATEGORICAL


def _plain(series: pd.Series) -> pd.Series:
    # A pandas categorical would count its unused categories as values seen with frequency 0.
    return series.astype(object) if isinstance(series.dtype, pd.CategoricalDtype) else series


def _present(series: pd.Series) -> pd.Series:
    # Evidently replaces infinities by NaN and drops both before any test.
    return series.replace([-np.inf, np.inf], np.nan).dropna()


def profile_column(reference: pd.Series, kind: str) -> ColumnProfile:
    if kind == NUMERICAL:
        return _profile_numerical(pd.to_numeric(reference, errors="coerce"))
    present = _present(_plain(reference))
    if present.empty:
        raise ValueError(f"Column {reference.name!r} has no values in the reference data.")
    counts = present.value_counts(sort=False)
    return ColumnProfile(kind, len(present), counts.index, counts.to_numpy(), None, 0.0)


def _profile_numerical(reference: pd.Series) -> ColumnProfile:
    numbers = reference.to_numpy(dtype=float, na_value=np.nan)
    present = numbers[np.isfinite(numbers)]
    if present.size == 0:
        raise ValueError(f"Column {reference.name!r} has no values in the reference data.")
    sorted_values = np.sort(present)
    distinct = 1 + int(np.count_nonzero(np.diff(sorted_values)))
    # Only a column this poor in values can meet Evidently's frequency tests; counting the values of a
    # continuous column would cost a hash table of every row.
    counts = pd.Series(present).value_counts(sort=False) if distinct <= FEW_DISTINCT_VALUES else None
    return ColumnProfile(
        kind=NUMERICAL,
        rows=present.size,
        values=None if counts is None else counts.index,
        counts=None if counts is None else counts.to_numpy(),
        sorted_values=sorted_values,
        # Evidently's np.std(series) on the values in their original order: the same summation.
        std=float(np.std(pd.Series(present))),
    )


def encode_current(profile: ColumnProfile, current: pd.Series) -> CurrentColumn:
    numbers = None
    if profile.kind == NUMERICAL:
        current = pd.to_numeric(current, errors="coerce")
        numbers = current.to_numpy(dtype=float, na_value=np.nan)
        numbers[~np.isfinite(numbers)] = np.nan
    if profile.values is None:
        return CurrentColumn(codes=None, labels=[], numbers=numbers)
    codes, uniques = pd.factorize(_plain(current), use_na_sentinel=True)
    unique_index = pd.Index(uniques)
    position = profile.values.get_indexer(unique_index)
    missing = np.asarray(unique_index.isin([np.inf, -np.inf]), dtype=bool)
    new = (position < 0) & ~missing
    position[new] = len(profile.values) + np.arange(int(new.sum()))
    position[missing] = -1
    lookup = np.append(position, -1)  # code -1 (NaN) reads the last entry
    labels = list(profile.values) + list(unique_index[new])
    return CurrentColumn(codes=lookup[codes], labels=labels, numbers=numbers)


def judge(profile: ColumnProfile, current: CurrentColumn, rows: np.ndarray | None) -> ColumnVerdict | None:
    """Evidently's verdict for the current rows at positions `rows` (all rows when None).

    None when the rows hold no value of the column, where Evidently would refuse the whole report.
    """
    if profile.values is not None and current.codes is not None:
        codes = current.codes if rows is None else current.codes.take(rows)
        codes = codes[codes >= 0]
        if codes.size == 0:
            return None
        current_counts = np.bincount(codes, minlength=len(current.labels))
        distinct = len(profile.values) + int(np.count_nonzero(current_counts[len(profile.values) :]))
        if profile.kind == CATEGORICAL or distinct <= FEW_DISTINCT_VALUES:
            return frequency_test(profile, current, current_counts, distinct)
    assert current.numbers is not None
    assert profile.sorted_values is not None
    numbers = current.numbers if rows is None else current.numbers.take(rows)
    numbers = numbers[~np.isnan(numbers)]
    if numbers.size == 0:
        return None
    if profile.rows <= SMALL_REFERENCE_ROWS:
        p_value = float(stats.ks_2samp(profile.sorted_values, numbers).pvalue)
        return ColumnVerdict(KS, p_value, P_VALUE_THRESHOLD, _p_value_drifted(KS, p_value), NUMERICAL)
    score = wasserstein_sorted(profile.sorted_values, np.sort(numbers)) / max(profile.std, WASSERSTEIN_MIN_NORM)
    return ColumnVerdict(WASSERSTEIN, score, DISTANCE_THRESHOLD, score >= DISTANCE_THRESHOLD, NUMERICAL)


def frequency_test(
    profile: ColumnProfile, current: CurrentColumn, current_counts: np.ndarray, distinct: int
) -> ColumnVerdict:
    assert profile.counts is not None
    reference_counts = np.zeros(len(current.labels), dtype=np.int64)
    reference_counts[: len(profile.counts)] = profile.counts
    # Evidently's keys: every value seen in either sample.
    seen = (reference_counts > 0) | (current_counts > 0)
    reference_counts, current_counts = reference_counts[seen], current_counts[seen]
    reference_rows, current_rows = profile.rows, int(current_counts.sum())
    if profile.rows > SMALL_REFERENCE_ROWS:
        score = float(distance.jensenshannon(reference_counts / reference_rows, current_counts / current_rows))
        return ColumnVerdict(JENSEN_SHANNON, score, DISTANCE_THRESHOLD, score >= DISTANCE_THRESHOLD, profile.kind)
    if distinct > 2:
        expected = reference_counts * (current_rows / reference_rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            # A value absent from the reference has expected count 0: the statistic is infinite and p is 0,
            # as in Evidently.
            p_value = float(stats.chisquare(current_counts, expected).pvalue)
        test = CHI_SQUARE
    else:
        labels = [label for label, keep in zip(current.labels, seen, strict=True) if keep]
        p_value = _z_test(labels, reference_counts, current_counts)
        test = Z_TEST
    return ColumnVerdict(test, p_value, P_VALUE_THRESHOLD, _p_value_drifted(test, p_value), profile.kind)


def _z_test(labels: list[object], reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Evidently's two-proportion Z-test, with its arithmetic in its order so the p-value is identical."""
    if len(labels) == 1:
        return 1.0
    first = sorted(labels)[0]  # type: ignore[type-var]
    first_position = labels.index(first)
    reference_rows, current_rows = int(reference_counts.sum()), int(current_counts.sum())
    # Evidently codes the smallest value as 0 and the other as 1, then averages the codes.
    reference_share = float(reference_rows - int(reference_counts[first_position])) / reference_rows
    current_share = float(current_rows - int(current_counts[first_position])) / current_rows
    pooled = float(reference_share * reference_rows + current_share * current_rows) / (reference_rows + current_rows)
    z = (reference_share - current_share) / np.sqrt(pooled * (1 - pooled) * (1.0 / reference_rows + 1.0 / current_rows))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def wasserstein_sorted(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> float:
    """`scipy.stats.wasserstein_distance` for two sorted samples, without sorting their concatenation.

    The current values are merged into the reference in linear time; each sample's CDF at a merged
    position is its running count. Inside a run of equal values that count differs from scipy's
    searchsorted, but those positions are multiplied by a zero gap, so the sum has the same terms.
    """
    reference_size, current_size = reference_sorted.size, current_sorted.size
    current_positions = np.searchsorted(reference_sorted, current_sorted) + np.arange(current_size)
    is_current = np.zeros(reference_size + current_size, dtype=bool)
    is_current[current_positions] = True
    merged = np.empty(reference_size + current_size, dtype=float)
    merged[current_positions] = current_sorted
    merged[~is_current] = reference_sorted
    # int32 accumulates several times faster than int64 here, and counts rows of one window.
    current_seen: np.ndarray = np.cumsum(is_current[:-1], dtype=np.int32 if is_current.size < 2**31 else np.int64)
    current_cdf = current_seen / current_size
    reference_cdf = (np.arange(1, reference_size + current_size) - current_seen) / reference_size
    return float(np.vecdot(np.abs(reference_cdf - current_cdf), np.diff(merged)))


def _p_value_drifted(test: str, p_value: float) -> bool:
    # Evidently's K-S test compares with <=, its chi-square and Z-tests with <.
    return p_value <= P_VALUE_THRESHOLD if test == KS else p_value < P_VALUE_THRESHOLD


def dataset_drift(verdicts: Iterable[ColumnVerdict]) -> tuple[float | None, bool | None]:
    """Share of drifted columns and whether it reaches Evidently's default 0.5 (None without columns)."""
    flags = [verdict.drifted for verdict in verdicts]
    if not flags:
        return None, None
    share = sum(flags) / len(flags)
    return share, share >= DATASET_DRIFT_SHARE


def control_false_discoveries(verdicts: list[ColumnVerdict]) -> list[ColumnVerdict]:
    """Re-judge the p-value tests with Benjamini-Hochberg adjusted p-values, taken over all of them.

    Only K-S, chi-square and Z-test verdicts change (the statistic stays the raw p-value; the adjusted
    one decides). Wasserstein and Jensen-Shannon are distances, not p-values: they cannot enter the
    correction and keep their verdicts.
    """
    positions = [index for index, verdict in enumerate(verdicts) if verdict.test in P_VALUE_TESTS]
    if not positions:
        return list(verdicts)
    adjusted = stats.false_discovery_control([verdicts[index].statistic for index in positions], method="bh")
    corrected = list(verdicts)
    for index, p_value in zip(positions, adjusted, strict=True):
        corrected[index] = replace(verdicts[index], drifted=_p_value_drifted(verdicts[index].test, float(p_value)))
    return corrected
