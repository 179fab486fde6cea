"""Reads of hourly summaries: any range of hours merged by adding, and trends per hour or day.

The database adds the hours up (sums, latency buckets, counts per predicted label), so a read costs a
few queries returning one row per point, whatever the number of hours and of predictions behind them.
Feature histograms are added in Python, over one version's hours, and only when asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from django.db.models import BigIntegerField, Count, F, Func, QuerySet, Sum, Value

from monitoring.models import HourlySummary, SummaryBins
from registry.models import ModelVersion, RegisteredModel
from scoring.recorder import percentile
from scoring.selectors import latency_histogram, latency_sums, utc_day

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
_ZERO_WHEN_NONE = {"rows", "latency_sum_ms", "rows_with_actuals", "prediction_count", "score_count"}


class _LabelCount(Func):
    """One predicted label's count in a summary's `predictions` object, as a number.

    Written per database because Django's own key lookup reads a digit key ("0", "1": the usual labels)
    as an array index."""

    output_field = BigIntegerField()

    def __init__(self, label: str) -> None:
        super().__init__(F("predictions"), Value(label))
        self.label = label

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(
            compiler, connection, template="CAST((%(expressions)s) AS BIGINT)", arg_joiner=" ->> ", **extra
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        path = self.copy()
        path.set_source_expressions(
            [self.get_source_expressions()[0], Value('$."' + self.label.replace('"', '\\"') + '"')]
        )
        return path.as_sql(compiler, connection, template="CAST(JSON_EXTRACT(%(expressions)s) AS INTEGER)", **extra)


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


def _hours(
    model: RegisteredModel, start: datetime, end: datetime, version: ModelVersion | None, slice_name: str
) -> QuerySet[HourlySummary]:
    hours = HourlySummary.objects.filter(model=model, slice=slice_name, hour__gte=start, hour__lt=end)
    return hours.filter(version=version) if version is not None else hours


def _labels(model: RegisteredModel, version: ModelVersion | None) -> list[str]:
    """Every label the model's versions (or the one version) predicted in a summarised hour."""
    bins = SummaryBins.objects.filter(version__model=model)
    if version is not None:
        bins = bins.filter(version=version)
    return sorted({label for labels in bins.values_list("labels", flat=True) for label in labels})


def _aggregates(labels: list[str], *, latency: bool = True) -> dict[str, Any]:
    return {
        **{name: Sum(name) for name in _FIGURES},
        **(latency_sums() if latency else {}),
        **{f"label_{index}": Sum(_LabelCount(label)) for index, label in enumerate(labels)},
    }


def _summary(row: Mapping[str, Any], labels: list[str]) -> Summary:
    figures: dict[str, Any] = {name: row[name] or 0 if name in _ZERO_WHEN_NONE else row[name] for name in _FIGURES}
    counts = {label: row[f"label_{index}"] for index, label in enumerate(labels)}
    return Summary(
        **figures,
        latency_histogram=latency_histogram(row) if "latency_0" in row else [],
        predictions={label: int(count) for label, count in counts.items() if count},
    )


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

    Two queries without `features`; with them, three more (which version, its hours' histograms, its bins).
    """
    hours = _hours(model, start, end, version, slice)
    labels = _labels(model, version)
    totals = hours.aggregate(**_aggregates(labels), hours=Count("hour", distinct=True))
    summary = _summary(totals, labels)
    summary.hours = totals["hours"]
    if not features or not summary.hours:
        return summary
    chosen = version.pk if version is not None else _busiest_version(hours)
    stored = SummaryBins.objects.filter(version_id=chosen).values_list("features", "version__number").first()
    bins, summary.features_version = stored if stored else ({}, None)
    merged: dict[str, FeatureHistogram] = {}
    for counted_features in hours.filter(version_id=chosen).values_list("features", flat=True):
        for name, counted in counted_features.items():
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


def _busiest_version(hours: QuerySet[HourlySummary]) -> int:
    busiest = hours.values("version_id").annotate(total=Sum("rows")).order_by("-total", "-version_id").first()
    return int(busiest["version_id"]) if busiest else 0


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
    latency: bool = True,
) -> list[TrendPoint]:
    """One merged summary (without feature histograms) per hour or UTC day of [start, end): two queries.

    Without `latency` the latency histograms are not added up (each bucket is a JSON lookup per hour)."""
    if period not in (HOUR, DAY):
        raise ValueError(f"period: {period!r} is not one of {HOUR!r}, {DAY!r}")
    labels = _labels(model, version)
    rows = (
        _hours(model, start, end, version, slice)
        .annotate(period=utc_day("hour") if period == DAY else F("hour"))
        .values("period")
        .annotate(**_aggregates(labels, latency=latency), hours=Count("hour", distinct=True))
        .order_by("period")
    )
    points = []
    for row in rows:
        summary = _summary(row, labels)
        summary.hours = row["hours"]
        moment = row["period"]
        if period == DAY:
            moment = datetime.combine(date.fromisoformat(moment), time(0), tzinfo=UTC)
        points.append(TrendPoint(start=moment, summary=summary))
    return points
