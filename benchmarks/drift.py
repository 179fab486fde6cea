"""Drift per slice (issue 5): monitoring.drift_report against one Evidently DataDriftPreset report per slice.

Synthetic window: 200,000 reference rows and 1,000,000 current rows of 20 numerical features (two of
them with only four distinct values, so they get Jensen-Shannon instead of Wasserstein) and 5
categorical ones (one binary), cut into 20 slices by a `segment` column; a few slices are shifted, by
amounts near the drift thresholds, so that verdicts differ between slices and between columns.

(a) Evidently: `Report([DataDriftPreset()])` on each slice against the reference, columns typed by an
explicit DataDefinition. (b) Ours: the reference profile build plus `window_drift` over the same
slices (which also judges the whole window), without false-discovery correction, as Evidently has
none. Then the speed ratio and the share of identical (slice, column) verdicts.

    .venv/bin/python benchmarks/drift.py [--evidently-slices 20] [--seed 0]

With --evidently-slices below 20, Evidently runs on that many slices and its time for all 20 is
extrapolated from them (printed as such).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Any

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

from monitoring import drift, drift_report

REFERENCE_ROWS = 200_000
CURRENT_ROWS = 1_000_000
SLICES = 20
NUMERICAL = [f"num_{i:02d}" for i in range(20)]
FEW_VALUED = NUMERICAL[-2:]
CATEGORIES = {
    "cat_color": ["red", "green", "blue"],
    "cat_country": ["de", "fr", "it", "es", "nl", "pl"],
    "cat_device": ["ios", "android", "web", "tv"],
    "cat_tier": ["free", "plus", "pro", "team", "enterprise"],
    "cat_member": ["no", "yes"],
}


FEATURES = NUMERICAL + list(CATEGORIES)


def features(rows: int, rng: np.random.Generator, shift: np.ndarray | None = None) -> pd.DataFrame:
    """Rows of every feature; `shift` (one number per feature, about a standard deviation's share) moves them."""
    shift = np.zeros(len(FEATURES)) if shift is None else shift
    columns: dict[str, Any] = {}
    for index, name in enumerate(NUMERICAL):
        if name in FEW_VALUED:
            weights = np.array([0.4, 0.3, 0.2, 0.1]) + shift[index] * np.array([-1.0, 0.0, 0.0, 1.0])
            columns[name] = rng.choice([0.0, 1.0, 2.0, 3.0], rows, p=weights / weights.sum())
        else:
            scale = 1.0 + index / 4
            columns[name] = rng.normal(index + shift[index] * scale, scale, rows)
    for index, (name, values) in enumerate(CATEGORIES.items(), start=len(NUMERICAL)):
        weights = np.linspace(2.0, 1.0, len(values)) + shift[index] * np.arange(len(values)) * 4
        columns[name] = rng.choice(np.array(values, dtype=object), rows, p=weights / weights.sum())
    frame = pd.DataFrame(columns)
    frame.loc[rng.random(rows) < 0.01, NUMERICAL[0]] = np.nan  # some missing values, dropped by both
    return frame


def current_window(rng: np.random.Generator) -> pd.DataFrame:
    """Slices of 50,000 rows; slices 0-4 unchanged, then more and more features shifted in each slice."""
    size = CURRENT_ROWS // SLICES
    parts = []
    for index in range(SLICES):
        shift = np.zeros(len(FEATURES))
        if index >= 5:
            moved = rng.choice(len(FEATURES), size=index - 4, replace=False)
            shift[moved] = rng.uniform(0.05, 0.2, size=moved.size)
        part = features(size, rng, shift)
        part["segment"] = f"s{index:02d}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def evidently_verdicts(reference: pd.DataFrame, current: pd.DataFrame, definition: DataDefinition) -> dict[str, bool]:
    report = Report([DataDriftPreset()], include_tests=True)
    result = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    ).dict()
    return {
        test["metric_config"]["params"]["column"]: test["status"].value == "FAIL"
        for test in result["tests"]
        if "column" in test["metric_config"]["params"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidently-slices", type=int, default=SLICES)
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args()

    rng = np.random.default_rng(arguments.seed)
    reference = features(REFERENCE_ROWS, rng)
    current = current_window(rng)
    columns = list(reference.columns)
    masks = {f"segment={value}": current["segment"] == value for value in sorted(current["segment"].unique())}
    kinds = {column: drift.column_kind(reference[column]) for column in columns}
    definition = DataDefinition(
        numerical_columns=[c for c in columns if kinds[c] == drift.NUMERICAL],
        categorical_columns=[c for c in columns if kinds[c] == drift.CATEGORICAL],
    )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"reference {len(reference):,} rows, current {len(current):,} rows, {len(columns)} features")

    started, cpu_started = time.perf_counter(), time.process_time()
    profile = drift_report.build_profile(reference)
    profile_seconds = time.perf_counter() - started
    _, per_slice, _ = drift_report.window_drift(profile, current[columns], masks, min_rows=100, fdr=False)
    ours_seconds, ours_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(f"ours: {ours_seconds:.2f} s wall (profile {profile_seconds:.2f} s), {ours_cpu:.2f} s CPU")

    evidently_names = list(masks)[: arguments.evidently_slices]
    theirs: dict[str, dict[str, bool]] = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    for name in evidently_names:
        slice_started = time.perf_counter()
        theirs[name] = evidently_verdicts(reference, current.loc[masks[name], columns], definition)
        print(f"  evidently {name}: {time.perf_counter() - slice_started:.1f} s", flush=True)
    evidently_seconds, evidently_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if len(evidently_names) < len(masks):
        evidently_seconds *= len(masks) / len(evidently_names)
        evidently_cpu *= len(masks) / len(evidently_names)
        scope = f"EXTRAPOLATED from {len(evidently_names)} of {len(masks)} slices"
    else:
        scope = f"all {len(masks)} slices"
    print(f"evidently: {evidently_seconds:.1f} s wall, {evidently_cpu:.1f} s CPU ({scope})")

    pairs = [(name, column) for name in evidently_names for column in columns]
    same = sum(per_slice[name]["columns"][column]["drifted"] == theirs[name][column] for name, column in pairs)
    drifted = sum(theirs[name][column] for name, column in pairs)
    print(
        f"speed ratio (evidently / ours): {evidently_seconds / ours_seconds:.1f}x wall, "
        f"{evidently_cpu / ours_cpu:.1f}x CPU"
    )
    print(
        f"identical verdicts: {same}/{len(pairs)} = {same / len(pairs):.2%} ({drifted} of them drifted per Evidently)"
    )


if __name__ == "__main__":
    main()
