"""Reads of hourly summaries: any range of hours merged by adding, and trends per hour or day.

Each read is one query over at most one row per hour (and slice), so its cost follows the length of
the range, never the number of predictions in it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitoring.models import HourlySummary, SummaryBins
from registry.models import ModelVersion, RegisteredModel
from scoring.recorder import percentile
from scoring.usage import histogram_sum

HOUR, DAY = "hour", "day"

_FIGURES = (
    "rows",
    "errors",
    "latency_sum_ms",
    "rows_with_actuals",
    "prediction_sum",
    "prediction_sum_squares",
    "prediction_count",
    "score_sum",
    "score_count",
)


@dataclass
class FeatureHistogram:
    """A feature's counts on its version's bins: numerical `edges` (a value v falls in bin i when
    edges[i-1] <= v < edges[i], the first bin below edges[0], the last from edges[-1] up), or categorical
    `values` with a last bin for every other value."""

    kind: str
    edges: list[float]
    values: list[str]
    counts: list[int]
    missing: int


@dataclass
class Summary:
    """Merged figures of a range of hours (one slice); means and rates are derived from the sums."""

    rows: int = 0
    errors: int | None = None  # failed requests; only known for all traffic
    latency_sum_ms: float = 0.0
    latency_histogram: list[int] = field(default_factory=list)
    rows_with_actuals: int = 0
    predictions: dict[str, int] = field(default_factory=dict)  # classifiers: predictions per label
    prediction_sum: float | None = None
    prediction_sum_squares: float | None = None
    prediction_count: int = 0
    score_sum: float | None = None
    score_count: int = 0
    hours: int = 0  # distinct hours summarised in the range
    # Of one version (bins differ between versions): the one asked for, else the one with most rows.
    features: dict[str, FeatureHistogram] = field(default_factory=dict)
    features_version: int | None = None

    @property
    def label_coverage(self) -> float | None:
        return self.rows_with_actuals / self.rows if self.rows else None

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.score_count if self.score_count and self.score_sum is not None else None

    @property
    def mean_prediction(self) -> float | None:
        if not self.prediction_count or self.prediction_sum is None:
            return None
        return self.prediction_sum / self.prediction_count

    @property
    def prediction_std(self) -> float | None:
        mean = self.mean_prediction
        if mean is None or self.prediction_sum_squares is None:
            return None
        return math.sqrt(max(self.prediction_sum_squares / self.prediction_count - mean * mean, 0.0))

    @property
    def mean_latency_ms(self) -> float | None:
        counted = sum(self.latency_histogram)
        return self.latency_sum_ms / counted if counted else None

    @property
    def p99_latency_ms(self) -> float | None:
        return percentile(self.latency_histogram, 0.99) if self.latency_histogram else None

    def add(self, row: dict[str, Any]) -> None:
        """Add one stored hour (a HourlySummary's values) to this summary."""
        for name in _FIGURES:
            value = row[name]
            if value is not None:
                current = getattr(self, name)
                setattr(self, name, value if current is None else current + value)
        self.latency_histogram = histogram_sum([self.latency_histogram, row["latency_histogram"]])
        self.predictions = dict(Counter(self.predictions) + Counter(row["predictions"]))


def _rows(
    model: RegisteredModel, start: datetime, end: datetime, version: ModelVersion | None, slice_name: str, *extra: str
) -> list[dict[str, Any]]:
    hours = HourlySummary.objects.filter(model=model, slice=slice_name, hour__gte=start, hour__lt=end)
    if version is not None:
        hours = hours.filter(version=version)
    names = ("hour", "version_id", "latency_histogram", "predictions", *_FIGURES, *extra)
    return list(hours.order_by("hour").values(*names))


def summary_over(
    *,
    model: RegisteredModel,
    start: datetime,
    end: datetime,
    version: ModelVersion | None = None,
    slice: str = "",
    features: bool = True,
) -> Summary:
    """The hours in [start, end) merged: as if the whole range had been summarised at once.

    Two queries with `features` (the summaries, the version's bins), one without."""
    rows = _rows(model, start, end, version, slice, *(("features",) if features else ()))
    summary = Summary()
    for row in rows:
        summary.add(row)
    summary.hours = len({row["hour"] for row in rows})
    if not features or not rows:
        return summary
    per_version = Counter[int]()
    for row in rows:
        per_version[row["version_id"]] += row["rows"]
    chosen = version.pk if version is not None else per_version.most_common(1)[0][0]
    stored = SummaryBins.objects.filter(version_id=chosen).values_list("features", "version__number").first()
    bins, summary.features_version = stored if stored else ({}, None)
    merged: dict[str, FeatureHistogram] = {}
    for row in rows:
        if row["version_id"] != chosen:
            continue
        for name, counted in row["features"].items():
            spec = bins.get(name)
            if spec is None:
                continue
            histogram = merged.setdefault(
                name,
                FeatureHistogram(
                    kind=spec["kind"],
                    edges=spec.get("edges", []),
                    values=spec.get("values", []),
                    counts=[0] * len(counted["counts"]),
                    missing=0,
                ),
            )
            histogram.counts = [a + b for a, b in zip(histogram.counts, counted["counts"], strict=True)]
            histogram.missing += counted["missing"]
    summary.features = merged
    return summary


@dataclass
class TrendPoint:
    start: datetime
    summary: Summary


def summary_trend(
    *,
    model: RegisteredModel,
    start: datetime,
    end: datetime,
    period: str = DAY,
    version: ModelVersion | None = None,
    slice: str = "",
) -> list[TrendPoint]:
    """One merged summary (without feature histograms) per hour or UTC day of [start, end): one query."""
    if period not in (HOUR, DAY):
        raise ValueError(f"period: {period!r} is not one of {HOUR!r}, {DAY!r}")
    points: dict[datetime, Summary] = {}
    for row in _rows(model, start, end, version, slice):
        moment = row["hour"] if period == HOUR else row["hour"].replace(hour=0)
        points.setdefault(moment, Summary()).add(row)
    return [TrendPoint(start=moment, summary=summary) for moment, summary in sorted(points.items())]
