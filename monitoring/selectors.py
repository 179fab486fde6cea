"""Reads of the monitoring pages: a fixed number of queries per page, whatever the number of models."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from monitoring.models import Alert, AlertRule, Report, RetrainingRecipe, RetrainingRun
from monitoring.summary_selectors import DAY, Summary, summary_over, summary_trend
from registry.choices import ModelTask, VersionStatus
from registry.models import ModelVersion, RegisteredModel
from scoring.models import ScoringStats
from scoring.recorder import percentile
from scoring.usage import histogram_sum

SPARKLINE_DAYS = 30
TRAFFIC_DAYS = 90


def headline_metric(task: str) -> str:
    """The one performance figure a tile shows: ranking quality for classifiers, error for regressors."""
    return "roc_auc" if task == ModelTask.CLASSIFICATION else "rmse"


@dataclass
class Tile:
    model: RegisteredModel
    version: ModelVersion
    latest: Report | None
    open_alerts: int
    recent: list[Report] = field(default_factory=list)

    @property
    def sparkline(self) -> list[tuple[datetime, float | None]]:
        return [(report.window_end, report.drift_share) for report in self.recent]

    @property
    def metric(self) -> str:
        return headline_metric(self.model.task)

    @property
    def current(self) -> float | None:
        """The metric in the latest report that had actuals: labels arrive weeks after predictions."""
        for report in reversed(self.recent):
            if report.performance.get(self.metric) is not None:
                return float(report.performance[self.metric])
        return None

    @property
    def registered(self) -> float | None:
        value = self.version.metrics.get(self.metric)
        return float(value) if isinstance(value, int | float) else None

    @property
    def health(self) -> str:
        """red: an alert is open; amber: the latest report saw drift; green: neither; grey: no recent report."""
        if self.open_alerts:
            return "red"
        if self.latest is None:
            return "grey"
        return "amber" if self.latest.dataset_drift or (self.latest.drift_share or 0) > 0 else "green"


def dashboard_tiles(*, now: datetime | None = None) -> list[Tile]:
    """Every production model with its latest report, open alerts and a drift-share sparkline: 3 queries."""
    now = now or timezone.now()
    versions = list(
        ModelVersion.objects.filter(status=VersionStatus.PRODUCTION)
        .select_related("model")
        .annotate(
            open_alerts=Count(
                "model__alert_rules__alerts", filter=Q(model__alert_rules__alerts__status=Alert.Status.OPEN)
            )
        )
        .order_by("model__name")
    )
    model_ids = [version.model_id for version in versions]
    reports = (
        Report.objects.filter(
            model_id__in=model_ids, status=Report.Status.DONE, window_end__gte=now - timedelta(days=SPARKLINE_DAYS)
        )
        .only("id", "model_id", "window_end", "drift_share", "dataset_drift", "performance", "rows_current")
        .order_by("model_id", "window_end")
    )
    by_model: dict[int, list[Report]] = defaultdict(list)
    for report in reports:
        by_model[report.model_id].append(report)
    tiles = []
    for version in versions:
        recent = by_model.get(version.model_id, [])
        latest = recent[-1] if recent else None  # none in SPARKLINE_DAYS: the tile says there is no recent report
        tiles.append(
            Tile(
                model=version.model,
                version=version,
                latest=latest,
                open_alerts=version.open_alerts,
                recent=recent,
            )
        )
    return tiles


def model_reports(*, model: RegisteredModel, limit: int = 90) -> list[Report]:
    """The latest finished reports of a model, oldest first (for trends)."""
    reports = list(Report.objects.filter(model=model, status=Report.Status.DONE).order_by("-window_end")[:limit])
    reports.reverse()
    return reports


def recent_reports(*, model: RegisteredModel, limit: int = 10) -> list[Report]:
    return list(Report.objects.filter(model=model).select_related("requested_by").order_by("-created_at")[:limit])


def open_alerts(*, model: RegisteredModel) -> list[Alert]:
    return list(
        Alert.objects.filter(rule__model=model, status=Alert.Status.OPEN).select_related("rule").order_by("-opened_at")
    )


def alert_rules(*, model: RegisteredModel) -> list[AlertRule]:
    """The model's rules, each with `is_open`: whether its alert is open now."""
    open_alert = Alert.objects.filter(rule=OuterRef("pk"), status=Alert.Status.OPEN)
    return list(AlertRule.objects.filter(model=model).annotate(is_open=Exists(open_alert)).order_by("name"))


def retraining_recipe(*, model: RegisteredModel) -> RetrainingRecipe | None:
    recipes = RetrainingRecipe.objects.filter(model=model)
    return recipes.select_related("periodic_task__crontab", "periodic_task__interval").first()


def retraining_runs(*, model: RegisteredModel, limit: int = 10) -> list[RetrainingRun]:
    return list(
        RetrainingRun.objects.filter(recipe__model=model)
        .select_related("version", "alert__rule", "requested_by")
        .order_by("-started_at")[:limit]
    )


def daily_usage(*, model: RegisteredModel, days: int = 30) -> list[tuple[date, int, int, float | None]]:
    """Requests, errors and p99 latency (ms, bucket bound) per day over all versions of the model.

    Reads counters of any granularity (minutes, rolled-up hours or days): each falls in one day.
    """
    since = timezone.now() - timedelta(days=days)
    per_day: dict[date, list[Any]] = {}
    rows = ScoringStats.objects.filter(version__model=model, start__gte=since).values_list(
        "start", "requests", "errors", "latency_histogram"
    )
    for start, requests, errors, histogram in rows:
        totals = per_day.setdefault(start.date(), [0, 0, []])
        totals[0] += requests
        totals[1] += errors
        totals[2].append(histogram)
    return [(day, t[0], t[1], percentile(histogram_sum(t[2]), 0.99)) for day, t in sorted(per_day.items())]


def daily_traffic(
    *, model: RegisteredModel, days: int = TRAFFIC_DAYS
) -> list[tuple[date, int, dict[str, int], float | None]]:
    """Logged predictions per UTC day from the hourly summaries (all traffic, every version): rows,
    predictions per label and label coverage. One query over at most 24 rows a day, whatever the traffic."""
    end = timezone.now()
    points = summary_trend(model=model, start=end - timedelta(days=days), end=end, period=DAY)
    return [
        (point.start.date(), point.summary.rows, point.summary.predictions, point.summary.label_coverage)
        for point in points
    ]


def version_traffic(*, version: ModelVersion, days: int = SPARKLINE_DAYS) -> Summary:
    """The version's logged predictions over the last `days` from its hourly summaries (one query)."""
    end = timezone.now()
    return summary_over(model=version.model, version=version, start=end - timedelta(days=days), end=end, features=False)
