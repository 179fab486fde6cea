"""Reads of the monitoring pages: a fixed number of queries per page, whatever the number of models."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, F, Func, JSONField, OuterRef, Q, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from monitoring import alerts, histograms, performance
from monitoring.models import Alert, AlertRule, EvidentlyReport, Report, RetrainingRecipe, RetrainingRun
from monitoring.summary_selectors import DAY, Summary, summary_over, summary_trend
from registry import audit
from registry.choices import ModelTask, VersionStatus
from registry.models import ModelVersion, RegisteredModel
from scoring.models import ScoringStats
from scoring.recorder import percentile
from scoring.selectors import latency_histogram, latency_sums, utc_day

SPARKLINE_DAYS = 30
USAGE_DAYS = 30
TRAFFIC_DAYS = 90


def headline_metric(task: str) -> str:
    """The one performance figure a tile shows: ranking quality for classifiers, error for regressors."""
    return "roc_auc" if task == ModelTask.CLASSIFICATION else "rmse"


# Tiles in this order: an open alert, then drift, then neither; models without a recent report come apart.
SEVERITY = {"red": 0, "amber": 1, "green": 2, "grey": 3}
RECENT_CHANGE_DAYS = 7
NAMED_AT_MOST = 3


@dataclass
class Tile:
    model: RegisteredModel
    version: ModelVersion  # in production now
    latest: Report | None  # the newest recent report on that version
    alerts: list[Alert] = field(default_factory=list)  # open
    recent: list[Report] = field(default_factory=list)  # on the production version, oldest first
    earlier: Report | None = None  # without a report on this version: the newest recent one on another
    drifted: list[str] = field(default_factory=list)  # the latest report's drifted columns
    pending: ModelVersion | None = None  # the newest version on its way to production

    @property
    def open_alerts(self) -> int:
        return len(self.alerts)

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
        if self.alerts:
            return "red"
        if self.latest is None:
            return "grey"
        return "amber" if self.latest.dataset_drift or (self.latest.drift_share or 0) > 0 else "green"

    @property
    def causes(self) -> list[str]:
        """Why the tile is red or amber, in words: each open alert's rule and value, else the drifted columns."""
        found = [
            (alerts.describe(alert.rule, alert.last_value) if alert.last_value is not None else alert.rule.name)
            + f", since {alert.opened_at:%d %b}"
            for alert in self.alerts
        ]
        if not found and self.drifted:
            named = ", ".join(self.drifted[:NAMED_AT_MOST])
            more = len(self.drifted) - NAMED_AT_MOST
            found.append(f"drift in {named}" + (f" and {more} more" if more > 0 else ""))
        return found

    @property
    def doing(self) -> str:
        """What is being done: a version on its way to production, or a recent change of production."""
        pending = self.pending
        if pending is not None:
            how = "retrained " if getattr(pending, "retrained", False) else ""
            state = pending.get_status_display().lower()
            if pending.status == VersionStatus.IN_REVIEW:
                needed = self.model.approvals_needed
                state += f": {getattr(pending, 'approvals', 0)} of {needed} approval{'s' if needed != 1 else ''}"
            return f"{how}v{pending.number} {state}"
        changed = self.version.status_changed_at
        if changed >= timezone.now() - timedelta(days=RECENT_CHANGE_DAYS):
            return f"v{self.version.number} live since {changed:%d %b %H:%M} UTC"
        return ""


def dashboard_tiles(*, now: datetime | None = None) -> list[Tile]:
    """Every production model with its recent reports, open alerts and the version on its way, most
    severe first: a fixed number of queries, whatever the number of models."""
    now = now or timezone.now()
    versions = list(
        ModelVersion.objects.filter(status=VersionStatus.PRODUCTION)
        .select_related("model")
        .prefetch_related("model__tags")
    )
    model_ids = [version.model_id for version in versions]
    reports = (
        Report.objects.filter(
            model_id__in=model_ids, status=Report.Status.DONE, window_end__gte=now - timedelta(days=SPARKLINE_DAYS)
        )
        .select_related("version")
        .only("id", "model_id", "version__number", "window_end", "drift_share", "dataset_drift", "performance")
        .order_by("model_id", "window_end", "id")
    )
    by_model: dict[int, list[Report]] = defaultdict(list)
    for report in reports:
        by_model[report.model_id].append(report)
    alerts_by_model: dict[int, list[Alert]] = defaultdict(list)
    for alert in (
        Alert.objects.filter(status=Alert.Status.OPEN, rule__model_id__in=model_ids)
        .select_related("rule")
        .order_by("opened_at")
    ):
        alerts_by_model[alert.rule.model_id].append(alert)
    pending: dict[int, ModelVersion] = {}
    for candidate in (
        ModelVersion.objects.filter(model_id__in=model_ids, status__in=VersionStatus.OPEN - {VersionStatus.DRAFT.value})
        .annotate(
            approvals=Count("signoffs", filter=Q(signoffs__kind="approval", signoffs__review_round=F("review_round"))),
            retrained=Exists(RetrainingRun.objects.filter(version=OuterRef("pk"))),
        )
        .order_by("model_id", "number")
    ):
        pending[candidate.model_id] = candidate  # the newest wins
    tiles = []
    for version in versions:
        recent = by_model.get(version.model_id, [])
        mine = [report for report in recent if report.version_id == version.pk]
        others = [report for report in recent if report.version_id != version.pk]
        tiles.append(
            Tile(
                model=version.model,
                version=version,
                latest=mine[-1] if mine else None,
                alerts=alerts_by_model.get(version.model_id, []),
                recent=mine,
                earlier=others[-1] if others and not mine else None,
                pending=pending.get(version.model_id),
            )
        )
    latest_ids = [tile.latest.pk for tile in tiles if tile.latest is not None and tile.latest.dataset_drift is not None]
    columns = dict(Report.objects.filter(pk__in=latest_ids).values_list("pk", "results__dataset__columns"))
    for tile in tiles:
        found = columns.get(tile.latest.pk) if tile.latest is not None else None
        if isinstance(found, dict):
            # By name: PostgreSQL's jsonb keeps no key order.
            tile.drifted = sorted(
                name for name, verdict in found.items() if isinstance(verdict, dict) and verdict.get("drifted")
            )
    return sorted(tiles, key=lambda tile: (SEVERITY[tile.health], tile.model.name))


def latest_report(*, model: RegisteredModel, report_id: int | None = None) -> Report | None:
    """The finished report asked for (if it is the model's), else the one with the newest window: whole."""
    done = Report.objects.filter(model=model, status=Report.Status.DONE)
    asked = done.filter(pk=report_id).first() if report_id is not None else None
    return asked or done.order_by("-window_end", "-id").first()


class _JsonParts(Func):
    """Parts of a JSON column, each at a path of keys, as one JSON array (null where a part is missing):
    the column is parsed once per row, where a key lookup per part would parse it once per part."""

    output_field = JSONField()

    def __init__(self, column: str, paths: list[list[str]]) -> None:
        super().__init__(F(column))
        self.paths = paths

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        column, params = compiler.compile(self.get_source_expressions()[0])
        keys = ["$" + "".join('."' + key.replace('"', '\\"') + '"' for key in path) for path in self.paths]
        return f"JSON_EXTRACT({column}, {', '.join(['%s'] * len(keys))})", [*params, *keys]

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        column, params = compiler.compile(self.get_source_expressions()[0])
        parts = ", ".join([f"({column} #> %s::text[])"] * len(self.paths))
        return f"jsonb_build_array({parts})", [value for path in self.paths for value in (*params, path)]


def model_reports(*, model: RegisteredModel, slices: Iterable[str] = (), limit: int = 90) -> list[Report]:
    """The latest finished reports of a model, oldest first, for trends: each report's `results` holds
    only what the trend charts read (its columns, the dataset's verdicts, and the performance of each of
    `slices`), extracted by the database. Whole results are mostly slice histograms: decoding 90 of them
    cost more than the rest of the monitoring page."""
    names = list(slices)
    paths = [["columns"], ["dataset", "columns"], *(["slices", name, "performance"] for name in names)]
    reports: list[Any] = list(
        Report.objects.filter(model=model, status=Report.Status.DONE)
        .defer("results")
        .annotate(trend_parts=_JsonParts("results", paths))
        .order_by("-window_end", "-id")[:limit]
    )
    reports.reverse()
    for report in reports:
        columns, verdicts, *performance = report.trend_parts
        report.results = {
            "columns": columns or [],
            "dataset": {"columns": verdicts or {}},
            "slices": {name: {"performance": found} for name, found in zip(names, performance, strict=True) if found},
        }
    return reports


def recent_reports(*, model: RegisteredModel, limit: int = 10) -> list[Report]:
    return list(
        Report.objects.filter(model=model)
        .defer("results")
        .select_related("requested_by")
        .order_by("-created_at")[:limit]
    )


def open_alerts(*, model: RegisteredModel) -> list[Alert]:
    return list(
        Alert.objects.filter(rule__model=model, status=Alert.Status.OPEN).select_related("rule").order_by("-opened_at")
    )


def alert_rules(*, model: RegisteredModel) -> list[AlertRule]:
    """The model's rules, each with `is_open`: whether its alert is open now."""
    open_alert = Alert.objects.filter(rule=OuterRef("pk"), status=Alert.Status.OPEN)
    return list(AlertRule.objects.filter(model=model).annotate(is_open=Exists(open_alert)).order_by("name"))


@dataclass(frozen=True)
class RuleReading:
    """What one report's stored values say of an active alert rule, whatever its alert's state."""

    rule: AlertRule
    value: float | None  # None when the report lacks the figure (no actuals, a slice too small)

    @property
    def would_open(self) -> bool | None:
        """Whether this window alone would have the alert open; None without a value."""
        return None if self.value is None else alerts.holds(self.rule, self.value)


@dataclass(frozen=True)
class WindowAlerts:
    """Each active rule read on one report, and whether that report's window is the one alerts follow."""

    report: Report
    readings: list[RuleReading]

    @property
    def newest_judged(self) -> datetime | None:
        """The end of the newest window any of these rules has been judged on."""
        return max((r.rule.judged_until for r in self.readings if r.rule.judged_until), default=None)

    @property
    def is_older(self) -> bool:
        """A newer window has been judged: this report opens and closes nothing, whatever it says."""
        return self.newest_judged is not None and self.newest_judged > self.report.window_end


def window_alerts(*, report: Report) -> WindowAlerts:
    """What the report's window says of each of the model's active rules (from its stored results, as
    alerts.evaluate reads them), next to the alert's state now, which follows only the newest window."""
    open_alert = Alert.objects.filter(rule=OuterRef("pk"), status=Alert.Status.OPEN)
    rules = AlertRule.objects.filter(model_id=report.model_id, active=True).annotate(is_open=Exists(open_alert))
    readings = [RuleReading(rule=rule, value=alerts.rule_value(rule, report)) for rule in rules.order_by("name")]
    return WindowAlerts(report=report, readings=readings)


@dataclass(frozen=True)
class Unreadable:
    """Archive files a report could not read: its figures leave out these rows."""

    rows: int
    files: int
    items: list[dict[str, Any]]
    rows_unknown: bool  # some files' row counts are not known: `rows` is a lower bound


def report_unreadable(*, report: Report) -> Unreadable | None:
    """The archive files the report could not read (`results["unreadable"]`), None when it read them all."""
    items = [dict(item) for item in (report.results or {}).get("unreadable") or [] if isinstance(item, dict)]
    if not items:
        return None
    for item in items:
        item["hour"] = _time_or_text(item.get("hour"))
    counts = [item.get("rows") for item in items]
    return Unreadable(
        rows=sum(int(count) for count in counts if isinstance(count, int)),
        files=len({item.get("path") for item in items}),
        items=items,
        rows_unknown=any(not isinstance(count, int) for count in counts),
    )


def _time_or_text(value: Any) -> datetime | Any:
    try:
        return parse_datetime(str(value)) or value
    except ValueError:  # shaped like a time but not one: shown as written
        return value


def evidently_report_of(*, report: Report) -> EvidentlyReport | None:
    """Evidently's report of the window, if anyone asked for it."""
    return EvidentlyReport.objects.filter(report=report).first()


def retraining_recipe(*, model: RegisteredModel) -> RetrainingRecipe | None:
    recipes = RetrainingRecipe.objects.filter(model=model)
    return recipes.select_related("periodic_task__crontab", "periodic_task__interval").first()


def retraining_runs(*, model: RegisteredModel, limit: int = 10) -> list[RetrainingRun]:
    return list(
        RetrainingRun.objects.filter(recipe__model=model)
        .select_related("version", "alert__rule", "requested_by")
        .order_by("-started_at")[:limit]
    )


def daily_usage(*, model: RegisteredModel, days: int = USAGE_DAYS) -> list[tuple[date, int, int, float | None]]:
    """Requests, errors and p99 latency (ms, bucket bound) per UTC day over all versions of the model.

    Counters of any granularity (minutes, rolled-up hours or days) each fall in one day; the database adds
    them up, so this is one query returning a row a day.
    """
    since = timezone.now() - timedelta(days=days)
    rows = (
        ScoringStats.objects.filter(version__model=model, start__gte=since)
        .annotate(day=utc_day("start"))
        .values("day")
        .annotate(requests=Sum("requests"), errors=Sum("errors"), **latency_sums())
        .order_by("day")
    )
    return [
        (date.fromisoformat(row["day"]), row["requests"], row["errors"], percentile(latency_histogram(row), 0.99))
        for row in rows
    ]


def daily_traffic(
    *, model: RegisteredModel, days: int = TRAFFIC_DAYS
) -> list[tuple[date, int, dict[str, int], float | None]]:
    """Logged predictions per UTC day from the hourly summaries (all traffic, every version): rows,
    predictions per label and label coverage. One query over at most 24 rows a day, whatever the traffic."""
    end = timezone.now()
    points = summary_trend(model=model, start=end - timedelta(days=days), end=end, period=DAY, latency=False)
    return [
        (point.start.date(), point.summary.rows, point.summary.predictions, point.summary.label_coverage)
        for point in points
    ]


def version_traffic(*, version: ModelVersion, days: int = SPARKLINE_DAYS) -> Summary:
    """The version's logged predictions over the last `days` from its hourly summaries (one query)."""
    end = timezone.now()
    return summary_over(model=version.model, version=version, start=end - timedelta(days=days), end=end, features=False)


def slice_verdicts(*, report: Report, rules: Iterable[AlertRule]) -> list[dict[str, Any]]:
    """Each slice's verdict with the rules that made it: Evidently's dataset rule, and every drift-share alert
    rule on that slice with whether its condition holds, so that the table never contradicts an alert."""
    found = []
    for name, piece in sorted(report.results.get("slices", {}).items()):
        columns = piece.get("columns", {})
        share = piece.get("drift_share")
        checks = []
        for rule in rules:
            if rule.active and rule.metric == AlertRule.Metric.DRIFT_SHARE and rule.slice == name:
                value = alerts.rule_value(rule, report)  # as alerts.evaluate reads and judges it
                if value is not None:
                    checks.append({"rule": rule, "holds": alerts.holds(rule, value)})
        found.append(
            {
                "name": name,
                "rows": piece.get("rows", 0),
                "too_small": piece.get("too_small", False),
                "share": share,
                "drifted_count": sum(bool(verdict.get("drifted")) for verdict in columns.values()),
                "judged": len(columns),
                "dataset_drift": piece.get("drifted"),
                "rules": checks,
            }
        )
    return found


def drift_table(*, report: Report, slice_name: str) -> list[dict[str, Any]]:
    """Per column of the whole window (or of a slice): its test, statistic, threshold, verdict and a
    thumbnail of its reference and current distributions, drifted first."""
    results = report.results
    columns = (results.get("slices", {}).get(slice_name, {}) if slice_name else results.get("dataset", {})).get(
        "columns", {}
    )
    rows = [
        {"column": name, **verdict, "distribution": histograms.distribution_thumbnail(report, name, slice_name)}
        for name, verdict in columns.items()
    ]
    return sorted(rows, key=lambda row: (not row.get("drifted"), row["column"]))


def deployment_markers(*, model: RegisteredModel) -> list[tuple[datetime, str]]:
    """Each moment a version of the model went live or was rolled back to, oldest first, as the audit
    trail records it: (time, "v3 live"), for the time axes of the monitoring charts."""
    events = audit.production_history(model=model).order_by("at", "id").values_list("at", "new")
    return [(at, f"v{new['version']} live") for at, new in events if isinstance(new, dict) and new.get("version")]


def fairness_without_actuals(*, report: Report) -> bool:
    """Whether the report compared its groups without actuals (too few were known): predicted positive
    rates only, no true or false positive rates."""
    fairness = report.results.get("fairness") or {}
    groups = [group for judged in fairness.values() for group in (judged.get("groups") or {}).values()]
    measured = [group for group in groups if not group.get("too_small")]
    return bool(measured) and not any("true_positive_rate" in group for group in measured)


def fairness_breaches(*, report: Report) -> list[str]:
    """Each fairness gap above its threshold in words, naming the two groups it lies between."""
    found = []
    for column, judged in (report.results.get("fairness") or {}).items():
        threshold = judged.get("threshold")
        for measure, gap in (judged.get("gaps") or {}).items():
            extremes = performance.fairness_extremes(judged, measure)
            if gap is None or threshold is None or gap <= threshold or extremes is None:
                continue
            high, high_value, low, low_value = extremes
            found.append(
                f"{column}: {measure.replace('_', ' ')} {gap:.3f} apart, between {high} ({high_value:.3f}) "
                f"and {low} ({low_value:.3f}); the threshold is {threshold:g}"
            )
    return found
