"""Our drift verdicts against Evidently 0.7's DataDriftPreset run on the same data.

Each Evidently Report costs about half a second, so every comparison checks many columns in one report.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from evidently import DataDefinition, Dataset, Report
from evidently.core.datasets import infer_column_type
from evidently.legacy.core import ColumnType
from evidently.presets import DataDriftPreset

from monitoring import drift, drift_report

# Evidently warns on its histograms of infinities and on its chi-square with a value new to the
# current data; our code runs clean under -W error::RuntimeWarning.
pytestmark = [
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:divide by zero encountered:RuntimeWarning"),
]


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, Any]:
    """Evidently's per-column test, score and verdict, and its dataset verdict, typed as we type columns."""
    kinds = {column: drift.column_kind(reference[column]) for column in reference}
    definition = DataDefinition(
        numerical_columns=[c for c, kind in kinds.items() if kind == drift.NUMERICAL],
        categorical_columns=[c for c, kind in kinds.items() if kind == drift.CATEGORICAL],
    )
    report = Report([DataDriftPreset()], include_tests=True)
    result = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    ).dict()
    columns: dict[str, dict[str, Any]] = {}
    share = None
    for metric in result["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            columns[config["column"]] = {"test": config["method"], "statistic": metric["value"]}
        else:
            share = metric["value"]["share"]
    dataset_drifted = None
    for test in result["tests"]:
        failed = test["status"].value == "FAIL"
        params = test["metric_config"]["params"]
        if "column" in params:
            columns[params["column"]]["drifted"] = failed
        else:
            dataset_drifted = failed
    return {"columns": columns, "drift_share": share, "drifted": dataset_drifted}


def assert_same_as_evidently(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert ours["columns"].keys() == theirs["columns"].keys()
    for column, expected in theirs["columns"].items():
        found = ours["columns"][column]
        assert found["test"] == expected["test"], column
        assert found["statistic"] == pytest.approx(expected["statistic"], rel=1e-9, abs=1e-15), column
        assert found["drifted"] == expected["drifted"], column
    assert ours["drift_share"] == pytest.approx(theirs["drift_share"])
    assert ours["drifted"] == theirs["drifted"]


def with_gaps(values: np.ndarray | list[Any], rng: np.random.Generator, share: float = 0.05) -> pd.Series:
    series = pd.Series(values, dtype=object if isinstance(values, list) else None)
    series[rng.random(len(series)) < share] = np.nan
    return series


def mixed_frame(rows: int, shift: float, rng: np.random.Generator) -> pd.DataFrame:
    """Every kind of column Evidently's default choice distinguishes; `shift` moves some of them."""
    return pd.DataFrame(
        {
            "income": with_gaps(rng.normal(shift, 1.0, rows), rng),
            "age": rng.normal(40.0, 10.0, rows).round(),
            "score": rng.gamma(2.0 + shift, 1.0, rows),
            "rating": with_gaps(rng.choice([1.0, 2.0, 3.0], rows, p=[0.2, 0.5 - shift / 4, 0.3 + shift / 4]), rng),
            "visits": rng.integers(0, 40, rows),
            "children": rng.integers(0, 4, rows),
            "region": with_gaps(list(rng.choice(["north", "south", "east", "west"], rows)), rng),
            "plan": list(rng.choice(["basic", "premium"], rows, p=[0.7 - shift / 3, 0.3 + shift / 3])),
            "channel": ["web"] * rows,
            "flag": rng.random(rows) < 0.5,
            "ratio": np.where(rng.random(rows) < 0.01, np.inf, rng.normal(0.0, 1.0, rows)),
        }
    )


def overall(reference: pd.DataFrame, current: pd.DataFrame, fdr: bool = False) -> dict[str, Any]:
    profile = drift_report.build_profile(reference)
    result, _, _ = drift_report.window_drift(profile, current, {}, min_rows=1, fdr=fdr)
    return result


def test_it_types_columns_as_evidently_does() -> None:
    rng = np.random.default_rng(0)
    frame = mixed_frame(200, 0.0, rng)
    expected = {ColumnType.Numerical: drift.NUMERICAL, ColumnType.Categorical: drift.CATEGORICAL}
    for column in frame:
        assert drift.column_kind(frame[column]) == expected[infer_column_type(frame[column])], column


def test_it_matches_evidently_with_a_small_reference() -> None:
    rng = np.random.default_rng(1)
    reference = mixed_frame(800, 0.0, rng)
    current = mixed_frame(600, 0.5, rng)
    # Few values in the reference but many in the current: the distinct count of both decides the test.
    reference["rating"] = rng.choice([1.0, 2.0, 3.0], 800)
    current["rating"] = rng.choice(np.arange(8.0), 600)
    current.loc[:20, "region"] = "islands"  # a value the reference never had: chi-square p is 0

    ours = overall(reference, current)
    theirs = evidently_drift(reference, current)

    assert_same_as_evidently(ours, theirs)
    tests = {column: verdict["test"] for column, verdict in ours["columns"].items()}
    assert {tests["income"], tests["rating"], tests["region"], tests["plan"]} == {
        drift.KS,
        drift.CHI_SQUARE,
        drift.Z_TEST,
    }
    assert ours["columns"]["channel"]["statistic"] == 1.0
    assert ours["columns"]["region"]["statistic"] == 0.0
    assert ours["columns"]["income"]["drifted"] is True
    assert ours["columns"]["age"]["drifted"] is False


def test_it_matches_evidently_with_a_large_reference() -> None:
    rng = np.random.default_rng(2)
    reference = mixed_frame(5000, 0.0, rng)
    current = mixed_frame(3000, 0.6, rng)
    current.loc[:50, "region"] = "islands"  # a value the reference never had

    ours = overall(reference, current)
    theirs = evidently_drift(reference, current)

    assert_same_as_evidently(ours, theirs)
    tests = {column: verdict["test"] for column, verdict in ours["columns"].items()}
    assert tests["income"] == drift.WASSERSTEIN
    assert tests["rating"] == tests["region"] == tests["plan"] == drift.JENSEN_SHANNON
    assert ours["drifted"] is theirs["drifted"]


def test_it_matches_evidently_on_undrifted_data() -> None:
    rng = np.random.default_rng(3)
    reference = mixed_frame(3000, 0.0, rng)
    current = mixed_frame(2000, 0.0, rng)

    ours = overall(reference, current)

    assert_same_as_evidently(ours, evidently_drift(reference, current))
    assert ours["drifted"] is False


def test_it_judges_each_slice_as_evidently_judges_that_slice_alone() -> None:
    rng = np.random.default_rng(4)
    reference = mixed_frame(4000, 0.0, rng)
    current = pd.concat([mixed_frame(1500, 0.0, rng), mixed_frame(1500, 0.8, rng)], ignore_index=True)
    segment = pd.Series(["steady"] * 1500 + ["moved"] * 1450 + ["tiny"] * 50)
    masks = {name: segment == name for name in ("steady", "moved", "tiny")}

    profile = drift_report.build_profile(reference)
    _, per_slice, correction = drift_report.window_drift(profile, current, masks, min_rows=100, fdr=False)

    assert correction == "none"
    assert per_slice["tiny"] == {"rows": 50, "too_small": True, "drift_share": None, "drifted": None, "columns": {}}
    for name in ("steady", "moved"):
        assert per_slice[name]["rows"] == int(masks[name].sum())
        assert per_slice[name]["too_small"] is False
        assert_same_as_evidently(per_slice[name], evidently_drift(reference, current[masks[name]]))
    assert per_slice["moved"]["drift_share"] > per_slice["steady"]["drift_share"]
    assert per_slice["moved"]["columns"]["income"]["drifted"] is True
    assert per_slice["steady"]["columns"]["income"]["drifted"] is False


def test_a_slice_is_compared_with_the_same_slice_of_the_reference() -> None:
    rng = np.random.default_rng(6)
    reference = mixed_frame(6000, 0.0, rng)
    reference.loc[reference["plan"] == "premium", "income"] += 3.0  # premium customers earn more, always
    current = mixed_frame(3000, 0.0, rng)
    current.loc[current["plan"] == "premium", "income"] += 3.0
    masks = {f"plan={plan}": current["plan"] == plan for plan in ("basic", "premium")}
    reference_masks = {f"plan={plan}": reference["plan"] == plan for plan in ("basic", "premium", "gold")}

    profile = drift_report.build_profile(reference, reference_masks)
    assert set(profile.slices) == {"plan=basic", "plan=premium"}  # no reference rows of "gold"
    _, per_slice, _ = drift_report.window_drift(
        profile, current, masks, min_rows=100, fdr=False, defined_by=dict.fromkeys(masks, "plan")
    )
    for name, mask in masks.items():
        assert per_slice[name]["baseline"] == "the same slice of the reference"
        assert "plan" not in per_slice[name]["columns"]
        theirs = evidently_drift(
            reference[reference_masks[name]].drop(columns="plan"), current[mask].drop(columns="plan")
        )
        assert_same_as_evidently(per_slice[name], theirs)
        assert per_slice[name]["columns"]["income"]["drifted"] is False


def test_it_leaves_out_a_column_without_values_in_a_slice() -> None:
    rng = np.random.default_rng(5)
    reference = mixed_frame(500, 0.0, rng)
    current = mixed_frame(400, 0.0, rng)
    current.loc[:199, "income"] = np.nan
    masks = {"empty": pd.Series(np.arange(400) < 200), "full": pd.Series(np.arange(400) >= 200)}

    _, per_slice, _ = drift_report.window_drift(drift_report.build_profile(reference), current, masks, 10, False)

    assert "income" not in per_slice["empty"]["columns"]
    assert "income" in per_slice["full"]["columns"]


def null_windows(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.Series]]:
    """Current and reference from one distribution, cut into many slices: every detection is false."""
    columns = 10
    reference = pd.DataFrame(rng.normal(size=(800, columns)), columns=[f"x{i}" for i in range(columns)])
    current = pd.DataFrame(rng.normal(size=(20000, columns)), columns=reference.columns)
    segment = pd.Series(np.arange(20000) % 40)
    return reference, current, {f"part={value}": segment == value for value in range(40)}


def test_it_controls_false_discoveries_over_all_slices() -> None:
    reference, current, masks = null_windows(np.random.default_rng(6))
    profile = drift_report.build_profile(reference)

    def detections(fdr: bool) -> tuple[int, str]:
        whole, per_slice, correction = drift_report.window_drift(profile, current, masks, 100, fdr)
        found = sum(v["drifted"] for part in [whole, *per_slice.values()] for v in part["columns"].values())
        return found, correction

    uncorrected, none = detections(False)
    corrected, benjamini_hochberg = detections(True)

    assert none == "none"
    assert benjamini_hochberg == "benjamini-hochberg"
    assert uncorrected >= 10  # about 5% of 410 tests
    assert corrected < uncorrected
    assert corrected <= 2


def test_it_keeps_distance_verdicts_under_correction() -> None:
    rng = np.random.default_rng(7)
    reference = mixed_frame(3000, 0.0, rng)
    current = mixed_frame(2000, 0.8, rng)

    assert overall(reference, current, fdr=True) == overall(reference, current, fdr=False)


def test_it_rejudges_p_values_with_benjamini_hochberg() -> None:
    verdicts = [
        drift.ColumnVerdict(drift.KS, p_value, 0.05, p_value <= 0.05, drift.NUMERICAL)
        for p_value in (0.001, 0.02, 0.03, 0.04, 0.5)
    ] + [drift.ColumnVerdict(drift.WASSERSTEIN, 0.3, 0.1, True, drift.NUMERICAL)]

    corrected = drift.control_false_discoveries(verdicts)

    # Adjusted p-values: 0.005, 0.05, 0.05, 0.05, 0.5; K-S drifts at <= 0.05.
    assert [verdict.drifted for verdict in corrected] == [True, True, True, True, False, True]
    assert [verdict.statistic for verdict in corrected] == [verdict.statistic for verdict in verdicts]


def test_it_keeps_a_versions_profile_but_not_a_trailing_one() -> None:
    reference = pd.DataFrame({"income": np.arange(50.0)})

    kept = drift_report.profile_for(987654, reference, "reference")

    assert drift_report.profile_for(987654, reference, "reference") is kept
    assert drift_report.profile_for(987654, reference, "trailing") is not drift_report.profile_for(
        987654, reference, "trailing"
    )


def test_wasserstein_of_sorted_samples_equals_scipy() -> None:
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(9)
    reference = np.sort(rng.normal(size=3000).round(1))  # many ties across the two samples
    current = np.sort(rng.normal(0.2, 1.0, 700).round(1))

    assert drift.wasserstein_sorted(reference, current) == wasserstein_distance(reference, current)
