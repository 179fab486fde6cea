"""The time-axis charts of a model's monitoring page: they mark each moment a version went live or was
rolled back to, as the audit trail records it (a dotted line and "v1 live" at that moment, at that day on
the charts per day, only where the chart's time axis reaches), and name only the series they draw."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.utils import timezone

from monitoring import charts, selectors
from monitoring.models import Report
from registry import audit
from registry.choices import AuditAction
from registry.models import AuditEvent, ModelVersion, RegisteredModel
from tests.monitoring.test_summary_pages import simulate


def figure(page: str, chart: str) -> dict[str, Any]:
    found = re.search(rf'<script id="chart-{chart}" type="application/json">(.*?)</script>', page, re.S)
    assert found, f"no {chart} chart"
    return json.loads(found.group(1))


def marks(figure: dict[str, Any]) -> list[tuple[str, str]]:
    """Where each marker's line stands, with its label."""
    layout = figure["layout"]
    lines = [(shape["x0"], shape["x1"], shape["yref"], shape["line"]["dash"]) for shape in layout.get("shapes", [])]
    assert all(x0 == x1 and yref == "paper" and dash == "dot" for x0, x1, yref, dash in lines)
    labels = [(note["x"], note["text"]) for note in layout.get("annotations", [])]
    assert [x for x, _ in labels] == [x0 for x0, _, _, _ in lines]
    return labels


def test_the_charts_mark_when_the_version_went_live(production: ModelVersion, author: Any, client: Any) -> None:
    live = AuditEvent.objects.get(model=production.model, action=AuditAction.MODEL_PRODUCTION_CHANGED)
    simulate(production, days=3)
    end = timezone.now()
    for days_ago, auc in ((2, 0.8), (0, 0.75)):
        Report.objects.create(
            model=production.model,
            version=production,
            window_start=end - timedelta(days=days_ago + 1),
            window_end=end - timedelta(days=days_ago),
            status=Report.Status.DONE,
            performance={"roc_auc": auc},
        )
    client.force_login(author)

    page = client.get("/models/churn/monitoring/").content.decode()

    assert marks(figure(page, "performance")) == [(live.at.isoformat(), "v1 live")]
    day = f"{live.at.astimezone(UTC).date().isoformat()}T00:00:00"  # through the bar of its day
    assert marks(figure(page, "usage")) == [(day, "v1 live")]
    assert marks(figure(page, "traffic")) == [(day, "v1 live")]


def test_each_go_live_and_rollback_is_a_marker_and_a_withdrawal_is_not(
    churn_model: RegisteredModel, author: Any
) -> None:
    def changed(number: int | None) -> AuditEvent:
        return audit.audit_event_create(
            actor=author,
            action=AuditAction.MODEL_PRODUCTION_CHANGED,
            model=churn_model,
            new={"version": number},
        )

    first, second = changed(1), changed(2)
    changed(None)  # withdrawn: nothing went live
    back = changed(1)  # rolled back to
    audit.audit_event_create(actor=author, action=AuditAction.VERSION_SUBMIT, model=churn_model, new={"version": 3})

    markers = selectors.deployment_markers(model=churn_model)

    assert markers == [(first.at, "v1 live"), (second.at, "v2 live"), (back.at, "v1 live")]


def reports(*ends: datetime, **performance: float | None) -> list[Report]:
    return [Report(window_end=end, performance=dict(performance)) for end in ends]


def test_a_marker_outside_the_time_axis_is_left_out_and_a_narrow_axis_is_widened_around_the_data() -> None:
    end = datetime(2026, 11, 27, 12, tzinfo=UTC)
    before, during, after = end - timedelta(days=10), end - timedelta(hours=20), end + timedelta(days=3)
    markers = [(before, "v1 live"), (during, "v2 live"), (after, "v3 live")]

    one = charts.performance_trend(reports(end, roc_auc=0.8), ["roc_auc"], {}, markers=markers)

    assert one is not None and one["layout"]["xaxis"]["range"] == [
        (end - timedelta(days=1)).isoformat(),
        (end + timedelta(days=1)).isoformat(),
    ]
    assert marks(one) == [(during.isoformat(), "v2 live")]
    days = [(date(2026, 11, 20) + timedelta(days=n), 100, 0, 12.0) for n in range(8)]
    usage = charts.volume_and_latency(days, markers=markers)
    assert marks(usage) == [("2026-11-26T00:00:00", "v2 live")]  # 20 hours before noon: the day before
    assert "range" not in usage["layout"]["xaxis"]


def test_a_metric_or_a_latency_without_values_is_not_in_the_legend() -> None:
    ends = [datetime(2026, 11, day, tzinfo=UTC) for day in (20, 21, 22)]
    registered = {"roc_auc": 0.9, "accuracy": 0.85}

    found = charts.performance_trend(reports(*ends, roc_auc=0.8, accuracy=None), ["roc_auc", "accuracy"], registered)

    assert found is not None and [trace["name"] for trace in found["data"]] == ["roc_auc", "roc_auc at registration"]
    assert charts.performance_trend(reports(*ends, roc_auc=None), ["roc_auc", "accuracy"], registered) is None
    days = [(date(2026, 11, 20), 10, 0, None), (date(2026, 11, 21), 12, 1, None)]
    usage = charts.volume_and_latency(days)
    assert [trace["name"] for trace in usage["data"]] == ["requests", "errors"] and "yaxis2" not in usage["layout"]


def test_a_p99_beyond_the_largest_latency_bucket_is_drawn_at_it_and_said_above() -> None:
    days = [(date(2026, 11, 20), 10, 0, 50.0), (date(2026, 11, 21), 12, 1, float("inf"))]

    (latency,) = [trace for trace in charts.volume_and_latency(days)["data"] if trace["name"] == "p99 latency (ms)"]

    assert latency["y"] == [50.0, 5000.0] and latency["customdata"] == ["", "above "]
    json.dumps(latency, allow_nan=False)  # what the page's JSON.parse accepts
