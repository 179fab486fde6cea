"""Drift of a window per (slice, feature), and its histograms, with the window left in DuckDB.

Per (slice, feature), with the baseline `drift_report` chooses (the same slice of the reference, else
the whole reference):
- at most EXACT_MAX_VALUES current values: they are fetched and judged by `drift.judge`, exactly as
  Evidently judges them;
- more: one GROUP BY GROUPING SETS scan per feature gives every slice's summary at once, judged by
  `drift_summary`: value counts (categorical columns, numerical ones with few distinct values), the
  current counts around each reference value (Kolmogorov-Smirnov, reference of at most 1,000 rows) or a
  fine histogram on FINE_BINS equal-width bins between the reference's minimum and maximum plus an
  underflow and an overflow bin, each with the sum of its values (Wasserstein).
The same scan counts the charts' histograms (results["histograms"] and each slice's recount).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring import drift, drift_report, drift_summary
from monitoring.columnar import TRAFFIC, Window, quote
from monitoring.drift import ColumnProfile, ColumnVerdict
from monitoring.grouping import SLICE, Grouping, by_slice, slice_rows
from monitoring.slicing import Slice

# A (slice, feature) with at most this many values is judged on its raw values, exactly as Evidently judges
# them. Above it the aggregates agree with Evidently as well (benchmarks/README.md) at a fraction of the
# cost: fetching 25 features of 20 slices of 50,000 rows took half of a 1M-row report.
EXACT_MAX_VALUES = 20_000
FINE_BINS = 4096
# A numerical column with at most this many distinct values in the window is counted by value (exact).
FEW_VALUES = 2_000
DISTINCT_SAMPLE_ROWS = 200_000
DISPLAY_BINS = 20
DISPLAY_CATEGORIES = 50
OVERALL = drift_report.OVERALL


@dataclass(frozen=True)
class Target:
    """A column as the scans read it: its value and when that value counts as present."""

    name: str
    value: str
    valid: str
    kind: str

    @classmethod
    def of(cls, name: str, kind: str) -> Target:
        column = quote(name)
        if kind == drift.NUMERICAL:
            value = f"TRY_CAST({column} AS DOUBLE)"
            return cls(name, value, f"isfinite({value})", kind)
        return cls(name, column, f"{column} IS NOT NULL", kind)


@dataclass
class WindowDrift:
    overall: dict[str, Any]
    slices: dict[str, dict[str, Any]]
    correction: str
    histograms: dict[str, dict[str, Any]]
    missing_share: dict[str, float]


def window_drift(
    window: Window,
    profile: drift_report.Profile,
    reference: pd.DataFrame,
    slices: list[Slice],
    *,
    min_rows: int,
    fdr: bool,
) -> WindowDrift:
    grouping = Grouping(slices)
    columns = list(profile.columns)
    targets = [Target.of(column, profile.columns[column].kind) for column in columns]
    overall_stats = _overall_stats(window, targets)
    stats = grouping.query(
        window,
        [],
        [
            ("__rows", "count(*)"),
            *((f"__valid{i}", _valid_count(t, overall_stats[t.name])) for i, t in enumerate(targets)),
        ],
    ).set_index(SLICE, drop=False)
    sizes: dict[str | None, int] = {piece.name: 0 for piece in slices} | {OVERALL: window.rows}
    sizes.update(
        {name: int(rows) for name, rows in zip(stats[SLICE], stats["__rows"], strict=True) if name is not None}
    )
    compared: list[str | None] = [OVERALL, *(p.name for p in slices if sizes[p.name] >= min_rows)]
    conditions = {piece.name: piece.condition for piece in slices}
    defined_by = {piece.name: piece.column for piece in slices if piece.column is not None}

    verdicts: dict[tuple[str | None, str], ColumnVerdict] = {}
    exact: dict[int, dict[str | None, int]] = {}  # column -> slice -> its values
    histograms: dict[str, dict[str, Any]] = {}
    recounts: dict[str | None, dict[str, list[int]]] = {}
    for index, target in enumerate(targets):
        baselines: dict[str | None, ColumnProfile] = {}
        big: list[str | None] = []
        for name in compared:
            if name is not None and defined_by.get(name) == target.name:
                continue
            own = profile.slices.get(name) if name is not None else None
            baselines[name] = own.columns[target.name] if own is not None else profile.columns[target.name]
            valid = int(stats.loc[[name]]["__valid" + str(index)].iloc[0]) if name in stats.index else 0
            if valid == 0:
                continue
            if valid <= EXACT_MAX_VALUES:
                exact.setdefault(index, {})[name] = valid
            else:
                big.append(name)
        found, histogram, slice_counts = _aggregated(
            window, grouping, target, baselines, big, reference[target.name], overall_stats.get(target.name, {})
        )
        verdicts.update({(name, target.name): verdict for name, verdict in found.items()})
        histograms[target.name] = histogram
        for name, counts in slice_counts.items():
            recounts.setdefault(name, {})[target.name] = counts

    for index, valid_by_slice in exact.items():
        target = targets[index]
        for name, values in slice_rows(
            window, list(valid_by_slice), conditions, valid_by_slice, [target.name], where=target.valid
        ):
            base = _baseline(profile, name, target.name)
            verdict = drift.judge(base, drift.encode_current(base, values[target.name]), None)
            if verdict is not None:
                verdicts[(name, target.name)] = verdict

    judged = [
        (name, column, verdicts[(name, column)])
        for name in compared
        for column in columns
        if (name, column) in verdicts
    ]
    overall, per_slice, correction = drift_report.summarise(
        judged, sizes, [piece.name for piece in slices], set(compared), set(profile.slices), fdr
    )
    for name, piece in per_slice.items():
        if not piece["too_small"]:
            piece["histograms"] = {column: recounts.get(name, {}).get(column, []) for column in columns}
    missing = {
        t.name: overall_stats.get(t.name, {}).get("missing", 0) / window.rows if window.rows else 0.0 for t in targets
    }
    return WindowDrift(overall, per_slice, correction, histograms, missing)


def column_verdict(window: Window, target: Target, baseline: ColumnProfile) -> ColumnVerdict | None:
    """One column's verdict over the whole window (the model's output, for prediction drift)."""
    valid = int(window.connection.execute(f"SELECT count(*) FROM {TRAFFIC} WHERE {target.valid}").fetchone()[0])  # type: ignore[index]
    if valid == 0:
        return None
    if valid <= EXACT_MAX_VALUES:
        ((_, values),) = slice_rows(window, [OVERALL], {}, {OVERALL: valid}, [target.name], where=target.valid)
        return drift.judge(baseline, drift.encode_current(baseline, values[target.name]), None)
    found, _, _ = _aggregated(
        window,
        Grouping([]),
        target,
        {OVERALL: baseline},
        [OVERALL],
        None,
        _overall_stats(window, [target])[target.name],
    )
    return found.get(OVERALL)


def _baseline(profile: drift_report.Profile, name: str | None, column: str) -> ColumnProfile:
    own = profile.slices.get(name) if name is not None else None
    return own.columns[column] if own is not None else profile.columns[column]


def _overall_stats(window: Window, targets: list[Target]) -> dict[str, dict[str, Any]]:
    """Per column: missing values, and for numerical ones the range, whether every value is finite, and
    about how many distinct values there are.

    Plain counts, minima and maxima first: aggregates with a FILTER clause cost DuckDB forty times more
    (65 s against 4 s for 25 columns of 50M rows). A numerical column whose extremes are finite holds
    no NaN or infinity (DuckDB orders NaN above every number), so its missing values are its nulls; only
    a column holding NaN or infinity is counted again value by value.

    The distinct count only chooses between counting by value and binning (both judge the same), so it
    is estimated on a sample of about DISTINCT_SAMPLE_ROWS rows: counting distinct values of every row
    costs more than all the rest.
    """
    if not targets:
        return {}
    selected = []
    for index, target in enumerate(targets):
        selected.append(f"count({quote(target.name)}) AS present{index}")
        if target.kind == drift.NUMERICAL:
            selected += [f"min({target.value}) AS low{index}", f"max({target.value}) AS high{index}"]
    cursor = window.connection.execute(f"SELECT {', '.join(selected)} FROM {TRAFFIC}")
    # Python values, not a DataFrame's: there a NaN minimum (a column of NaN only) would read as no value.
    row = dict(zip([column[0] for column in cursor.description], cursor.fetchone() or (), strict=True))
    found: dict[str, dict[str, Any]] = {}
    unusual = []
    for index, target in enumerate(targets):
        entry: dict[str, Any] = {"missing": window.rows - int(row[f"present{index}"]), "finite": True}
        low, high = row.get(f"low{index}"), row.get(f"high{index}")
        if low is not None and high is not None:
            if np.isfinite(low) and np.isfinite(high):
                entry.update(low=low, high=high)
            else:
                unusual.append(index)
        found[target.name] = entry
    if unusual:
        exact = []
        for index in unusual:
            target = targets[index]
            exact += [
                f"count(*) FILTER (WHERE {quote(target.name)} IS NULL OR isnan({target.value})) AS missing{index}",
                f"min({target.value}) FILTER (WHERE {target.valid}) AS low{index}",
                f"max({target.value}) FILTER (WHERE {target.valid}) AS high{index}",
            ]
        counted = window.connection.execute(f"SELECT {', '.join(exact)} FROM {TRAFFIC}").df().iloc[0]
        for index in unusual:
            found[targets[index].name].update(
                {key: counted[f"{key}{index}"] for key in ("missing", "low", "high")}, finite=False
            )
    numerical = [(index, target) for index, target in enumerate(targets) if target.kind == drift.NUMERICAL]
    if numerical:
        share = min(100.0, 100.0 * DISTINCT_SAMPLE_ROWS / max(window.rows, 1))
        sample = f"USING SAMPLE {share!r}% (system)" if share < 100 else ""
        distinct = ", ".join(f"approx_count_distinct({t.value}) AS distinct{i}" for i, t in numerical)
        sampled = window.connection.execute(f"SELECT {distinct} FROM {TRAFFIC} {sample}").df().iloc[0]
        for index, target in numerical:
            found[target.name]["distinct"] = sampled[f"distinct{index}"]
    return found


def _valid_count(target: Target, stats: dict[str, Any]) -> str:
    """The aggregate counting a column's valid values, plain where the column holds no NaN or infinity."""
    return f"count({target.value})" if stats["finite"] else f"count(*) FILTER (WHERE {target.valid})"


def _aggregated(
    window: Window,
    grouping: Grouping,
    target: Target,
    baselines: dict[str | None, ColumnProfile],
    big: list[str | None],
    reference: pd.Series | None,
    stats: dict[str, Any],
) -> tuple[dict[str | None, ColumnVerdict], dict[str, Any], dict[str | None, list[int]]]:
    """One scan of a column: the verdicts of the big slices, its histogram and every slice's recount."""
    curves: dict[int, drift_summary.ReferenceCurve] = {}

    def curve(base: ColumnProfile) -> drift_summary.ReferenceCurve:
        return curves.setdefault(id(base), drift_summary.ReferenceCurve.of(base))

    verdicts: dict[str | None, ColumnVerdict] = {}
    by_value = target.kind == drift.CATEGORICAL or (stats.get("distinct") or 0) <= FEW_VALUES
    if by_value:
        groups = grouping.query(window, [("__v", target.value)], [("__n", "count(*)")], where=target.valid)
        split = by_slice(groups)
        for name in big:
            mine = split.get(name, groups.iloc[0:0])
            base = baselines[name]
            if target.kind == drift.CATEGORICAL:
                verdict = drift_summary.frequency_verdict(base, list(mine["__v"]), mine["__n"].to_numpy())
            else:
                verdict = drift_summary.weighted_verdict(
                    base, curve(base), mine["__v"].to_numpy(float), mine["__n"].to_numpy()
                )
            if verdict is not None:
                verdicts[name] = verdict
        histogram, recount = _display_by_value(groups, reference, target, stats)
        return verdicts, histogram, recount

    whole = baselines.get(OVERALL) or next(iter(baselines.values()))
    assert whole.sorted_values is not None
    low, high = float(whole.sorted_values[0]), float(whole.sorted_values[-1])
    edges = _display_edges(reference, stats)
    first, scale = float(edges[0]), float(DISPLAY_BINS / (edges[-1] - edges[0]))
    extra = [
        ("__coarse", f"least(CAST(floor(({target.value} - {first!r}) * {scale!r}) AS BIGINT), {DISPLAY_BINS - 1})")
    ]
    ks = [name for name in big if baselines[name].rows <= drift.SMALL_REFERENCE_ROWS]
    if len(ks) < len(big):
        fine = float(FINE_BINS / (high - low)) if high > low else 0.0
        extra.append(
            (
                "__fine",
                f"CASE WHEN {target.value} < {low!r} THEN -1 WHEN {target.value} > {high!r} THEN {FINE_BINS} "
                f"ELSE least(CAST(floor(({target.value} - {low!r}) * {fine!r}) AS BIGINT), {FINE_BINS - 1}) END",
            )
        )
    grid = np.unique(np.concatenate([curve(baselines[name]).values for name in ks])) if ks else np.array([])
    helpers = []
    if ks:
        below, upto = _rank(target.value, "<", grid.size, "__l"), _rank(target.value, "<=", grid.size, "__r")
        helpers = below[:-1] + upto[:-1]
        extra += [("__below", below[-1][1]), ("__upto", upto[-1][1])]
    groups = grouping.query(
        window,
        extra,
        [("__n", "count(*)"), ("__sum", f"sum({target.value})")],
        where=target.valid,
        source=f"(SELECT *, $grid::DOUBLE[] AS __grid FROM {TRAFFIC})" if ks else TRAFFIC,
        parameters={"grid": grid.tolist()} if ks else None,
        helpers=helpers,
    )
    split = by_slice(groups)
    for name in big:
        mine = split.get(name, groups.iloc[0:0])
        base = baselines[name]
        if name in ks:
            verdict = _ks(base, curve(base), grid, mine)
        else:
            bins = mine.groupby("__fine")[["__n", "__sum"]].sum().sort_index()
            means = (bins["__sum"] / bins["__n"]).to_numpy(float)
            verdict = drift_summary.wasserstein_verdict(base, curve(base), means, bins["__n"].to_numpy())
        if verdict is not None:
            verdicts[name] = verdict
    counts = groups.groupby([SLICE, "__coarse"], dropna=False)["__n"].sum()
    recount = {
        name: _dense(
            counts.xs(name, level=SLICE, drop_level=True) if name in counts.index.get_level_values(SLICE) else None
        )
        for name in groups[SLICE].dropna().unique()
    }
    overall = counts[counts.index.get_level_values(SLICE).isna()].droplevel(SLICE)
    histogram = {
        "kind": drift.NUMERICAL,
        "edges": edges.tolist(),
        "reference": np.histogram(_numbers(reference), bins=edges)[0].tolist() if reference is not None else [],
        "current": _dense(overall),
    }
    return verdicts, histogram, recount


def _rank(value: str, comparison: str, size: int, prefix: str) -> list[tuple[str, str]]:
    """How many grid values are `comparison` the value: a binary search over the list __grid, one
    select item per halving step (each names the previous), the last one the count."""
    steps: list[tuple[str, str]] = [(f"{prefix}0", "0")]
    step = 1 << max(size.bit_length() - 1, 0)
    while step:
        previous = steps[-1][0]
        steps.append(
            (
                f"{prefix}{len(steps)}",
                f"{previous} + CASE WHEN __grid[{previous} + {step}] {comparison} {value} THEN {step} ELSE 0 END",
            )
        )
        step >>= 1
    return steps


def _ks(
    base: ColumnProfile, curve: drift_summary.ReferenceCurve, grid: np.ndarray, groups: pd.DataFrame
) -> ColumnVerdict | None:
    """K-S from the groups' counts by (grid values below x, grid values at or below x)."""
    weights = groups["__n"].to_numpy(float)
    by_below = np.bincount(groups["__below"].to_numpy(int), weights=weights, minlength=grid.size + 1)
    by_upto = np.bincount(groups["__upto"].to_numpy(int), weights=weights, minlength=grid.size + 1)
    # x <= grid[j] exactly when fewer than j + 1 grid values are below x; x < grid[j] when at most j are <= x.
    at_or_below = np.cumsum(by_below)[: grid.size].astype(np.int64)
    below = np.cumsum(by_upto)[: grid.size].astype(np.int64)
    return drift_summary.ks_verdict(base, curve, grid, at_or_below, below, int(weights.sum()))


def _numbers(series: pd.Series | None) -> np.ndarray:
    if series is None:
        return np.array([])
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return numbers[np.isfinite(numbers)]


def _display_edges(reference: pd.Series | None, stats: dict[str, Any]) -> np.ndarray:
    """Twenty equal bins over the reference and the window together (as np.histogram_bin_edges of both)."""
    values = _numbers(reference)
    lows = [v for v in (stats.get("low"), values.min() if values.size else None) if v is not None and np.isfinite(v)]
    highs = [v for v in (stats.get("high"), values.max() if values.size else None) if v is not None and np.isfinite(v)]
    low, high = (float(min(lows)), float(max(highs))) if lows else (0.0, 1.0)
    if low == high:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, DISPLAY_BINS + 1)


def _dense(counts: pd.Series | None) -> list[int]:
    dense = np.zeros(DISPLAY_BINS, dtype=np.int64)
    if counts is not None and len(counts):
        positions = np.clip(np.asarray(counts.index, dtype=float).astype(int), 0, DISPLAY_BINS - 1)
        np.add.at(dense, positions, counts.to_numpy(dtype=np.int64))
    return dense.tolist()


def _display_by_value(
    groups: pd.DataFrame, reference: pd.Series | None, target: Target, stats: dict[str, Any]
) -> tuple[dict[str, Any], dict[str | None, list[int]]]:
    """The histogram from value counts: numerical bins for a column with many values, else categories."""
    recount: dict[str | None, list[int]] = {}
    names = groups[SLICE].dropna().unique()
    numerical = target.kind == drift.NUMERICAL and reference is not None and pd.api.types.is_numeric_dtype(reference)
    if numerical and reference is not None and reference.nunique() > 10:
        edges = _display_edges(reference, stats)

        def counts_of(rows: pd.DataFrame) -> list[int]:
            return (
                np.histogram(rows["__v"].to_numpy(float), bins=edges, weights=rows["__n"].to_numpy(float))[0]
                .astype(int)
                .tolist()
            )

        histogram = {
            "kind": drift.NUMERICAL,
            "edges": edges.tolist(),
            "reference": np.histogram(_numbers(reference), bins=edges)[0].tolist(),
        }
    else:
        labels = groups["__v"].map(str)  # one call per distinct value of a slice
        present = reference.dropna().astype(str) if reference is not None else pd.Series(dtype=str)
        categories = sorted(set(present) | set(labels[groups[SLICE].isna()]))[:DISPLAY_CATEGORIES]
        reference_counts = present.value_counts()

        def counts_of(rows: pd.DataFrame) -> list[int]:
            found = pd.Series(rows["__n"].to_numpy(), index=rows["__v"].map(str)).groupby(level=0).sum()
            return [int(found.get(category, 0)) for category in categories]

        histogram = {
            "kind": drift.CATEGORICAL,
            "categories": categories,
            "reference": [int(reference_counts.get(category, 0)) for category in categories],
        }
    split = by_slice(groups)
    histogram["current"] = counts_of(split[None])
    recount.update({name: counts_of(split.get(name, groups.iloc[0:0])) for name in names})
    return histogram, recount
