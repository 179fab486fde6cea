"""Drift of a window per (slice, feature), and its histograms, with the window left in DuckDB.

Per (slice, feature), with the baseline `drift_report` chooses (the same slice of the reference, else
the whole reference):
- at most EXACT_MAX_VALUES current values: they are fetched and judged by `drift.judge`, exactly as
  Evidently judges them;
- more: every slice's summary at once, judged by `drift_summary`: value counts (categorical columns,
  numerical ones with few distinct values: one GROUP BY per column), or, for the other numerical
  columns, all counted together in one scan (`_binned_counts`): the current counts around each
  reference value (Kolmogorov-Smirnov, reference of at most 1,000 rows) or a fine histogram on FINE_BINS
  equal-width bins between the reference's minimum and maximum plus an underflow and an overflow bin,
  each with the sum of its values (Wasserstein).
The same scans count the charts' histograms (results["histograms"] and each slice's recount).
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
# Rows a scan hands numpy at a time: 25 columns of them are about 13 MB, outside DuckDB's memory limit.
SCAN_ROWS = 65_536
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
    binned: list[tuple[_Plan, dict[str | None, ColumnProfile], list[str | None]]] = []
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
        column_stats = overall_stats.get(target.name, {})
        if _counted_by_value(target, column_stats):
            found, histogram, slice_counts = _by_value(
                window, grouping, target, baselines, big, reference[target.name], column_stats
            )
            _collect(target.name, found, histogram, slice_counts, verdicts, histograms, recounts)
        else:
            plan = _Plan.of(target, baselines, big, reference[target.name], column_stats)
            binned.append((plan, baselines, big))
    # The numerical columns with many values are counted together, in one scan of the window.
    for (plan, baselines, big), counts in zip(
        binned, _binned_counts(window, grouping, [b[0] for b in binned]), strict=True
    ):
        found, histogram, slice_counts = _binned_verdicts(plan, baselines, big, counts)
        _collect(plan.target.name, found, histogram, slice_counts, verdicts, histograms, recounts)

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
    stats = _overall_stats(window, [target])[target.name]
    baselines: dict[str | None, ColumnProfile] = {OVERALL: baseline}
    if _counted_by_value(target, stats):
        found, _, _ = _by_value(window, Grouping([]), target, baselines, [OVERALL], None, stats)
    else:
        plan = _Plan.of(target, baselines, [OVERALL], None, stats)
        (counts,) = _binned_counts(window, Grouping([]), [plan])
        found, _, _ = _binned_verdicts(plan, baselines, [OVERALL], counts)
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


def _collect(
    column: str,
    found: dict[str | None, ColumnVerdict],
    histogram: dict[str, Any],
    slice_counts: dict[str | None, list[int]],
    verdicts: dict[tuple[str | None, str], ColumnVerdict],
    histograms: dict[str, dict[str, Any]],
    recounts: dict[str | None, dict[str, list[int]]],
) -> None:
    verdicts.update({(name, column): verdict for name, verdict in found.items()})
    histograms[column] = histogram
    for name, counts in slice_counts.items():
        recounts.setdefault(name, {})[column] = counts


def _counted_by_value(target: Target, stats: dict[str, Any]) -> bool:
    return target.kind == drift.CATEGORICAL or (stats.get("distinct") or 0) <= FEW_VALUES


def _by_value(
    window: Window,
    grouping: Grouping,
    target: Target,
    baselines: dict[str | None, ColumnProfile],
    big: list[str | None],
    reference: pd.Series | None,
    stats: dict[str, Any],
) -> tuple[dict[str | None, ColumnVerdict], dict[str, Any], dict[str | None, list[int]]]:
    """One scan of a column counted by value: the verdicts of the big slices, its histogram and every
    slice's recount."""
    verdicts: dict[str | None, ColumnVerdict] = {}
    curves: dict[int, drift_summary.ReferenceCurve] = {}  # slices without their own reference share one
    groups = grouping.query(window, [("__v", target.value)], [("__n", "count(*)")], where=target.valid)
    split = by_slice(groups)
    for name in big:
        mine = split.get(name, groups.iloc[0:0])
        base = baselines[name]
        if target.kind == drift.CATEGORICAL:
            verdict = drift_summary.frequency_verdict(base, list(mine["__v"]), mine["__n"].to_numpy())
        else:
            curve = curves.setdefault(id(base), drift_summary.ReferenceCurve.of(base))
            verdict = drift_summary.weighted_verdict(base, curve, mine["__v"].to_numpy(float), mine["__n"].to_numpy())
        if verdict is not None:
            verdicts[name] = verdict
    histogram, recount = _display_by_value(groups, reference, target, stats)
    return verdicts, histogram, recount


@dataclass
class _Plan:
    """How a numerical column with many values is counted: on the display bins (the charts), on
    FINE_BINS bins between the reference's extremes with the sum of each bin's values (Wasserstein), and
    by rank among `grid`, the reference values of the slices whose reference is small enough for
    Kolmogorov-Smirnov."""

    target: Target
    edges: np.ndarray
    reference: pd.Series | None
    low: float
    high: float
    fine: bool
    grid: np.ndarray
    curves: dict[int, drift_summary.ReferenceCurve]
    ks: list[str | None]

    @classmethod
    def of(
        cls,
        target: Target,
        baselines: dict[str | None, ColumnProfile],
        big: list[str | None],
        reference: pd.Series | None,
        stats: dict[str, Any],
    ) -> _Plan:
        curves: dict[int, drift_summary.ReferenceCurve] = {}
        for base in baselines.values():
            curves.setdefault(id(base), drift_summary.ReferenceCurve.of(base))
        whole = baselines.get(OVERALL) or next(iter(baselines.values()))
        assert whole.sorted_values is not None
        ks = [name for name in big if baselines[name].rows <= drift.SMALL_REFERENCE_ROWS]
        grid = np.unique(np.concatenate([curves[id(baselines[name])].values for name in ks])) if ks else np.array([])
        return cls(
            target=target,
            edges=_display_edges(reference, stats),
            reference=reference,
            low=float(whole.sorted_values[0]),
            high=float(whole.sorted_values[-1]),
            fine=len(ks) < len(big),
            grid=grid.astype(float),
            curves=curves,
            ks=ks,
        )

    def widths(self) -> list[int]:
        """The bins of each count: display, fine (counts, then sums), grid values below, at or below."""
        fine = FINE_BINS + 2 if self.fine else 0
        ranks = self.grid.size + 1 if self.ks else 0
        return [DISPLAY_BINS, fine, fine, ranks, ranks]

    def bins(self, values: np.ndarray) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """Per count of `widths`, each value's bin and the weights counted (None: one per value)."""
        first, scale = float(self.edges[0]), float(DISPLAY_BINS / (self.edges[-1] - self.edges[0]))
        empty = np.zeros(0, dtype=np.int64)
        found: list[tuple[np.ndarray, np.ndarray | None]] = [(_floor(values, first, scale, DISPLAY_BINS - 1), None)]
        if self.fine:
            width = float(FINE_BINS / (self.high - self.low)) if self.high > self.low else 0.0
            fine = _floor(values, self.low, width, FINE_BINS - 1)
            fine += 1  # 0: below the reference, FINE_BINS + 1: above it (whatever the width)
            fine -= values < self.low
            fine = np.where(values > self.high, FINE_BINS + 1, fine)
            found += [(fine, None), (fine, values)]
        else:
            found += [(empty, None), (empty, None)]
        if self.ks:
            found += [
                (np.searchsorted(self.grid, values, side="left"), None),
                (np.searchsorted(self.grid, values, side="right"), None),
            ]
        else:
            found += [(empty, None), (empty, None)]
        return found


def _floor(values: np.ndarray, low: float, scale: float, last: int) -> np.ndarray:
    scaled = np.floor((values - low) * scale)
    return np.clip(scaled, 0, last, out=scaled).astype(np.int64)


@dataclass
class _Counts:
    """One slice's counts of a numerical column on its plan's bins (`_Plan.widths`)."""

    display: np.ndarray
    fine: np.ndarray
    sums: np.ndarray
    below: np.ndarray
    upto: np.ndarray


def _binned_counts(window: Window, grouping: Grouping, plans: list[_Plan]) -> list[dict[str | None, _Counts]]:
    """Every plan's counts per slice, from one scan of the window.

    DuckDB reads the columns and numbers each row's slices; numpy bins and counts. As one GROUP BY per
    column, the counts took DuckDB 1-4 s a column at 50M rows (every row hashed into tens of thousands
    of groups, and one scan per column); counting by bin index in numpy takes a fraction of that.
    """
    if not plans:
        return []
    codes, sizes = grouping.codes(), grouping.sizes()
    selected = [f"CAST({sql} AS INTEGER) AS __k{index}" for index, sql in enumerate(codes)]
    selected += [f"{plan.target.value} AS __v{index}" for index, plan in enumerate(plans)]
    totals = [[[np.zeros(size * width) for size in sizes] for width in plan.widths()] for plan in plans]
    reader = window.connection.sql(f"SELECT {', '.join(selected)} FROM {TRAFFIC}").to_arrow_reader(SCAN_ROWS)
    for batch in reader:
        keys = [batch.column(index).to_numpy().astype(np.int64) for index in range(len(codes))]
        for index, plan in enumerate(plans):
            values = batch.column(len(codes) + index).to_numpy(zero_copy_only=False)  # nulls read as NaN
            valid = np.isfinite(values)
            mine = keys
            if not valid.all():
                values, mine = values[valid], [key[valid] for key in keys]
            positions: tuple[np.ndarray, list[np.ndarray]] | None = None  # (bins, their index in the totals)
            for (bins, weights), width, by_key in zip(plan.bins(values), plan.widths(), totals[index], strict=True):
                if not width:
                    continue
                if positions is None or positions[0] is not bins:  # the fine bins count twice: rows and sums
                    positions = (bins, [key * width + bins for key in mine])
                for position, size, total in zip(positions[1], sizes, by_key, strict=True):
                    total += np.bincount(position, weights=weights, minlength=size * width)
    found = []
    for plan, counted in zip(plans, totals, strict=True):
        split = [
            grouping.split_codes([total.reshape(size, width) for size, total in zip(sizes, by_key, strict=True)])
            for width, by_key in zip(plan.widths(), counted, strict=True)
        ]
        found.append({name: _Counts(*(counts[name] for counts in split)) for name in split[0]})
    return found


def _binned_verdicts(
    plan: _Plan,
    baselines: dict[str | None, ColumnProfile],
    big: list[str | None],
    counts: dict[str | None, _Counts],
) -> tuple[dict[str | None, ColumnVerdict], dict[str, Any], dict[str | None, list[int]]]:
    """The verdicts of the big slices from their counts, the column's histogram and every slice's recount."""
    verdicts: dict[str | None, ColumnVerdict] = {}
    for name in big:
        mine, base = counts[name], baselines[name]
        curve = plan.curves[id(base)]
        if name in plan.ks:
            # x <= grid[j] exactly when fewer than j + 1 grid values are below x; x < grid[j] when at most j are <= x.
            at_or_below = np.cumsum(mine.below)[: plan.grid.size].astype(np.int64)
            below = np.cumsum(mine.upto)[: plan.grid.size].astype(np.int64)
            verdict = drift_summary.ks_verdict(base, curve, plan.grid, at_or_below, below, int(mine.below.sum()))
        else:
            present = mine.fine > 0
            means = mine.sums[present] / mine.fine[present]
            verdict = drift_summary.wasserstein_verdict(base, curve, means, mine.fine[present].astype(np.int64))
        if verdict is not None:
            verdicts[name] = verdict
    recount: dict[str | None, list[int]] = {
        name: mine.display.astype(np.int64).tolist()
        for name, mine in counts.items()
        if name is not None and mine.display.any()
    }
    reference = (
        np.histogram(_numbers(plan.reference), bins=plan.edges)[0].tolist() if plan.reference is not None else []
    )
    histogram = {
        "kind": drift.NUMERICAL,
        "edges": plan.edges.tolist(),
        "reference": reference,
        "current": counts[OVERALL].display.astype(np.int64).tolist(),
    }
    return verdicts, histogram, recount


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
