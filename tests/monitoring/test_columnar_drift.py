"""Drift from DuckDB aggregates against Evidently 0.7 run on the same raw rows, and performance from
counts against scikit-learn."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics

from monitoring import drift, drift_report, drift_summary, performance, slicing, window_drift, window_performance
from monitoring.columnar import ACTUAL_LABEL, LABELLED_ROWS, TRAFFIC, Window
from monitoring.grouping import Grouping
from tests.monitoring.test_drift import evidently_drift, mixed_frame

pytestmark = [
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning"),
]


def frame_window(frame: pd.DataFrame) -> Window:
    """A window over an in-memory frame, with the views the report engine reads."""
    connection = duckdb.connect()
    connection.register("frame", frame)
    connection.execute(f"CREATE VIEW {TRAFFIC} AS SELECT * FROM frame")
    columns = dict(connection.execute(f"SELECT column_name, column_type FROM (DESCRIBE {TRAFFIC})").fetchall())
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    window = Window(connection, moment, moment, columns, len(frame), {})
    if ACTUAL_LABEL in frame:  # the frame has its actuals already: the join of `labelled_rows` is done
        connection.execute(f"CREATE TABLE {LABELLED_ROWS} AS SELECT * FROM frame WHERE {ACTUAL_LABEL} IS NOT NULL")
        window.labelled = set(frame.columns)
    return window


@pytest.fixture
def aggregated_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every (slice, feature) above this many values takes the aggregate path."""
    monkeypatch.setattr(window_drift, "EXACT_MAX_VALUES", 12_000)
    monkeypatch.setattr(window_performance, "EXACT_MAX_VALUES", 12_000)


def agreement(ours: dict[str, Any], theirs: dict[str, Any]) -> tuple[int, int]:
    assert ours["columns"].keys() == theirs["columns"].keys()
    same = sum(ours["columns"][c]["drifted"] == v["drifted"] for c, v in theirs["columns"].items())
    for column, expected in theirs["columns"].items():
        assert ours["columns"][column]["test"] == expected["test"], column
    return same, len(theirs["columns"])


def test_small_windows_are_judged_exactly_as_evidently_does() -> None:
    rng = np.random.default_rng(11)
    reference = mixed_frame(800, 0.0, rng)
    current = mixed_frame(600, 0.5, rng)
    profile = drift_report.build_profile(reference)
    found = window_drift.window_drift(frame_window(current), profile, reference, [], min_rows=1, fdr=False)
    theirs = evidently_drift(reference, current)
    for column, expected in theirs["columns"].items():
        assert found.overall["columns"][column]["statistic"] == pytest.approx(
            expected["statistic"], rel=1e-9, abs=1e-15
        )
        assert found.overall["columns"][column]["drifted"] == expected["drifted"]
    assert found.histograms["income"]["kind"] == "numerical" and sum(found.histograms["region"]["current"]) > 0
    # Counted from plain aggregates where a column is finite, value by value where it holds NaN or infinity.
    assert found.missing_share["income"] == pytest.approx(current["income"].isna().mean())
    assert found.missing_share["age"] == 0.0
    assert found.missing_share["ratio"] == 0.0  # infinity is not missing; it is left out of the test
    current["ratio"] = np.nan  # NaN only: all missing, and nothing left to judge
    found = window_drift.window_drift(frame_window(current), profile, reference, [], min_rows=1, fdr=False)
    assert found.missing_share["ratio"] == 1.0 and "ratio" not in found.overall["columns"]


@pytest.mark.parametrize(("seed", "shift"), [(21, 0.0), (22, 0.05), (23, 0.12), (24, 0.3), (25, 0.8)])
def test_large_windows_agree_with_evidently_from_aggregates(seed: int, shift: float) -> None:
    """300,000 rows against a 5,000-row reference: Wasserstein from a fine histogram, Jensen-Shannon
    from counts; shifts around the 0.1 threshold."""
    rng = np.random.default_rng(seed)
    reference = mixed_frame(5000, 0.0, rng)
    current = mixed_frame(300_000, shift, rng)
    current["income"] = current["income"] + rng.normal(0, 0.01)  # a continuous column with many values
    profile = drift_report.build_profile(reference)
    found = window_drift.window_drift(frame_window(current), profile, reference, [], min_rows=1, fdr=False)
    theirs = evidently_drift(reference, current)
    same, total = agreement(found.overall, theirs)
    assert same == total
    for column in ("income", "score"):
        assert found.overall["columns"][column]["statistic"] == pytest.approx(
            theirs["columns"][column]["statistic"], rel=1e-3
        )


def test_slices_from_aggregates_agree_with_evidently(aggregated_only: None) -> None:
    rng = np.random.default_rng(31)
    reference = mixed_frame(900, 0.0, rng)  # a small reference: K-S for the numerical columns
    current = pd.concat([mixed_frame(20_000, 0.0, rng), mixed_frame(20_000, 0.1, rng)], ignore_index=True)
    current["part"] = ["steady"] * 20_000 + ["moved"] * 20_000
    reference["part"] = rng.choice(["steady", "moved"], 900)
    window = frame_window(current)
    slices, errors = slicing.window_slices(window, ["part"], {"rich": "income > 0.5 and plan == 'premium'"})
    assert errors == {}
    masks = slicing.reference_masks(reference, slices, {"rich": "income > 0.5 and plan == 'premium'"})
    profile = drift_report.build_profile(reference, masks)
    found = window_drift.window_drift(window, profile, reference, slices, min_rows=100, fdr=False)
    agreed = total = 0
    for name, mask in [("part=moved", current["part"] == "moved"), ("part=steady", current["part"] == "steady")]:
        theirs = evidently_drift(reference[masks[name]].drop(columns="part"), current[mask].drop(columns="part"))
        same, count = agreement(found.slices[name], theirs)
        agreed, total = agreed + same, total + count
        assert found.slices[name]["columns"]["income"]["test"] == drift.KS
    assert agreed / total >= 0.99, f"{agreed} of {total}"


def test_one_scan_counts_every_numerical_column_of_every_slice() -> None:
    """Counted in numpy from one scan, for all columns and slices (overlapping ones too), the counts
    are pandas' counts of the same rows: display bins, fine bins with their sums, ranks among the grid."""
    rng = np.random.default_rng(51)
    current = pd.DataFrame(
        {"x": rng.normal(size=6000), "y": rng.normal(2, 1, 6000), "part": rng.choice(["a", "b", "c"], 6000)}
    )
    current.loc[::17, "x"] = np.nan
    current.loc[::29, "x"] = np.inf
    current.loc[::31, "y"] = None
    window = frame_window(current)
    slices, errors = slicing.window_slices(window, ["part"], {"high": "y > 2"})
    assert errors == {} and len(slices) == 4
    masks: dict[str | None, pd.Series] = {None: pd.Series(True, index=current.index), "high": current["y"] > 2}
    masks.update({f"part={value}": current["part"] == value for value in "abc"})
    plans = []
    for column in ("x", "y"):
        large = drift.profile_column(pd.Series(rng.normal(0, 1.5, 5000)), drift.NUMERICAL)  # Wasserstein
        small = drift.profile_column(pd.Series(rng.normal(0, 1.5, 800)), drift.NUMERICAL)  # K-S
        values = current[column][np.isfinite(current[column])]
        target = window_drift.Target.of(column, drift.NUMERICAL)
        baselines: dict[str | None, drift.ColumnProfile] = {None: large, **{p.name: small for p in slices}}
        stats = {"low": values.min(), "high": values.max()}
        plan = window_drift._Plan.of(target, baselines, list(masks), None, stats)
        assert plan.fine and plan.ks == list(masks)[1:]
        plans.append(plan)
    counted = window_drift._binned_counts(window, Grouping(slices), plans)
    for plan, counts in zip(plans, counted, strict=True):
        for name, mask in masks.items():
            values = current.loc[mask, plan.target.name].to_numpy(float)
            values = values[np.isfinite(values)]
            mine = counts[name]
            assert mine.display.tolist() == np.histogram(values, bins=plan.edges)[0].tolist()
            assert mine.fine.sum() == values.size and mine.sums.sum() == pytest.approx(values.sum())
            assert (mine.fine[0], mine.fine[-1]) == ((values < plan.low).sum(), (values > plan.high).sum())
            inside = values[(values >= plan.low) & (values <= plan.high)]
            edges = np.linspace(plan.low, plan.high, window_drift.FINE_BINS + 1)
            assert mine.fine[1:-1].tolist() == np.histogram(inside, bins=edges)[0].tolist()
            assert np.cumsum(mine.below)[:-1].tolist() == (values[:, None] <= plan.grid).sum(axis=0).tolist()
            assert np.cumsum(mine.upto)[:-1].tolist() == (values[:, None] < plan.grid).sum(axis=0).tolist()
    # A reference of one value: its fine bins are below it, at it, and above it.
    constant = drift.profile_column(pd.Series([1.0] * 5000), drift.NUMERICAL)
    target = window_drift.Target.of("x", drift.NUMERICAL)
    plan = window_drift._Plan.of(target, {None: constant}, [None], None, {"low": 0.0, "high": 2.0})
    assert plan.bins(np.array([0.5, 1.0, 2.0]))[1][0].tolist() == [0, 1, window_drift.FINE_BINS + 1]


def test_ks_from_counts_equals_scipy() -> None:
    rng = np.random.default_rng(41)
    reference = pd.Series(rng.normal(size=700).round(2))
    current = rng.normal(0.05, 1.0, 50_000).round(3)
    profile = drift.profile_column(reference, drift.NUMERICAL)
    curve = drift_summary.ReferenceCurve.of(profile)
    values, counts = np.unique(current, return_counts=True)
    verdict = drift_summary.weighted_verdict(profile, curve, values, counts)
    expected = stats.ks_2samp(reference.to_numpy(), current)
    assert verdict is not None and verdict.test == drift.KS
    assert verdict.statistic == pytest.approx(float(expected.pvalue), rel=1e-12)


def test_wasserstein_of_weighted_points_equals_scipy() -> None:
    rng = np.random.default_rng(42)
    reference = pd.Series(rng.lognormal(0, 1, 4000).round(2))
    points = np.sort(np.unique(rng.lognormal(0.2, 1.1, 3000).round(1)))
    weights = rng.integers(1, 50, points.size)
    profile = drift.profile_column(reference, drift.NUMERICAL)
    found = drift_summary.wasserstein(drift_summary.ReferenceCurve.of(profile), points, weights)
    assert found == pytest.approx(stats.wasserstein_distance(reference.to_numpy(), points, v_weights=weights), rel=1e-9)


def test_performance_from_counts_matches_scikit_learn(aggregated_only: None) -> None:
    rng = np.random.default_rng(51)
    rows = 30_000
    truth = rng.integers(0, 2, rows)
    score = np.clip(truth * 0.5 + rng.normal(0.25, 0.2, rows), 0, 1).round(4)
    predicted = (score > 0.5).astype(int)
    frame = pd.DataFrame(
        {
            ACTUAL_LABEL: truth.astype(str),
            "__prediction": predicted.astype(str),
            "__score": score,
            "group": rng.choice(["a", "b"], rows),
        }
    )
    results = window_performance.slice_performance(frame_window(frame), [], classification=True)
    found = results[None]
    exact = performance.classification(truth.astype(str), predicted.astype(str), score)
    for metric in ("accuracy", "precision", "recall", "f1", "positive_rate", "brier"):
        assert found[metric] == pytest.approx(exact[metric], rel=1e-9), metric
    assert found["roc_auc"] == pytest.approx(metrics.roc_auc_score(truth, score), abs=1e-4)
    assert found["average_precision"] == pytest.approx(metrics.average_precision_score(truth, score), abs=2e-3)
    assert [b["rows"] for b in found["calibration"]] == [b["rows"] for b in exact["calibration"]]
    fairness = window_performance.fairness(frame_window(frame), ["group"], 100, 0.1)
    rate_a = float(np.mean(predicted[frame["group"] == "a"]))
    assert fairness["group"]["groups"]["a"]["positive_rate"] == pytest.approx(rate_a)


def test_regression_from_sums_matches_scikit_learn(aggregated_only: None) -> None:
    rng = np.random.default_rng(52)
    truth = rng.normal(10, 3, 20_000)
    predicted = truth + rng.normal(0, 1, 20_000)
    frame = pd.DataFrame({ACTUAL_LABEL: truth.astype(str), "__actual_number": truth, "__number": predicted})
    found = window_performance.slice_performance(frame_window(frame), [], classification=False)[None]
    assert found["rows"] == 20_000
    assert found["mae"] == pytest.approx(metrics.mean_absolute_error(truth, predicted), rel=1e-9)
    assert found["rmse"] == pytest.approx(metrics.root_mean_squared_error(truth, predicted), rel=1e-9)
    assert found["r2"] == pytest.approx(metrics.r2_score(truth, predicted), rel=1e-9)


def test_a_bad_slice_expression_is_reported_not_fatal() -> None:
    window = frame_window(pd.DataFrame({"income": [1.0, 2.0], "plan": ["a", "b"]}))
    slices, errors = slicing.window_slices(window, ["plan"], {"bad": "nosuch > 1", "odd": "income.mean() > 1"})
    assert [piece.name for piece in slices] == ["plan=a", "plan=b"]
    assert set(errors) == {"bad", "odd"} and "nosuch" in errors["bad"]
    assert slicing.expression_sql("a < 1 & b == 'x' | ~(c in [1, 2])", ["a", "b", "c"]).count("AND") == 1
    assert slicing.expression_columns("a < 1 & b == 'x' | ~(c in [1, 2])") == ("a", "b", "c")
    good, _ = slicing.window_slices(window, [], {"rich": "income > 1 and plan == 'b'"})
    assert [(piece.name, piece.reads) for piece in good] == [("rich", ("income", "plan"))]
