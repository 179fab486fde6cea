"""Alert rules evaluated against each new report: open once, stay open, close when clear.

A rule's alert follows the newest window it has been judged on, not whichever report finished last: a
report over an older window leaves the alert as it is.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from monitoring import queue
from monitoring.models import Alert, AlertEvent, AlertRule, MonitoringConfig, Report
from registry import notifications

logger = logging.getLogger(__name__)


def rule_value(rule: AlertRule, report: Report) -> float | None:
    """The figure a rule watches, read from a stored report; None when the report lacks it."""
    results: dict[str, Any] = report.results or {}
    value: Any = None
    if rule.metric == AlertRule.Metric.PERFORMANCE:
        value = (report.performance or {}).get(rule.parameter)
    elif rule.metric == AlertRule.Metric.DRIFT_SHARE:
        slices = results.get("slices") or {}
        value = (slices.get(rule.slice) or {}).get("drift_share") if rule.slice else report.drift_share
    elif rule.metric == AlertRule.Metric.FEATURE_DRIFT:
        scope = ((results.get("slices") or {}).get(rule.slice) or {}) if rule.slice else results.get("dataset") or {}
        column = scope.get("columns", {}).get(rule.parameter)
        value = None if column is None else float(bool(column.get("drifted")))
    elif rule.metric == AlertRule.Metric.SLICE_PERFORMANCE:
        value = ((results.get("slices") or {}).get(rule.slice) or {}).get("performance", {}).get(rule.parameter)
    elif rule.metric == AlertRule.Metric.FAIRNESS_GAP:
        column, _, measure = rule.parameter.partition(":")
        value = ((results.get("fairness") or {}).get(column) or {}).get("gaps", {}).get(measure or "positive_rate")
    elif rule.metric == AlertRule.Metric.MISSING_SHARE:
        shares = results.get("missing_share") or {}
        value = shares.get(rule.parameter) if rule.parameter else (max(shares.values()) if shares else None)
    elif rule.metric == AlertRule.Metric.PREDICTION_VOLUME:
        value = report.rows_current
    return None if value is None else float(value)


def holds(rule: AlertRule, value: float) -> bool:
    """Whether a rule's condition holds for this value: its alert opens (or stays open)."""
    return value > rule.threshold if rule.comparison == AlertRule.Comparison.ABOVE else value < rule.threshold


def describe(rule: AlertRule, value: float, *, holding: bool = True) -> str:
    """A rule and its value in words: "Drift in the south (Share of drifted features in region=south) is
    0.1, above 0.05" (with `holding` false: "no longer above")."""
    watched = f"{rule.get_metric_display()}{' ' + rule.parameter if rule.parameter else ''}"
    watched += f" in {rule.slice}" if rule.slice else ""
    return (
        f"{rule.name} ({watched}) is {value:.4g}, "
        f"{'' if holding else 'no longer '}{rule.get_comparison_display()} {rule.threshold:g}"
    )


def evaluate(report: Report) -> list[AlertEvent]:
    """Open or close each active rule's alert from this report; returns the state changes."""
    if report.status != Report.Status.DONE:
        return []
    changes = []
    for rule in AlertRule.objects.filter(model=report.model, active=True):
        value = rule_value(rule, report)
        if value is None:
            continue
        try:
            event = _apply(rule, report, value)
        except IntegrityError:  # another worker opened it at the same moment: one open alert is enough
            continue
        if event is not None:
            changes.append(event)
    return changes


def _apply(rule: AlertRule, report: Report, value: float) -> AlertEvent | None:
    with transaction.atomic():
        # Compare-and-set on the rule: of two reports finishing at once, the newer window wins whatever
        # the order, and an older one changes nothing.
        newest = AlertRule.objects.filter(pk=rule.pk).filter(
            Q(judged_until__isnull=True) | Q(judged_until__lte=report.window_end)
        )
        if not newest.update(judged_until=report.window_end):
            return None
        open_alert = Alert.objects.select_for_update().filter(rule=rule, status=Alert.Status.OPEN).first()
        if holds(rule, value):
            if open_alert is not None:
                Alert.objects.filter(pk=open_alert.pk).update(last_value=value)
                return None
            alert = Alert.objects.create(rule=rule, opened_by_report=report, last_value=value)
            event = AlertEvent.objects.create(alert=alert, kind="opened", value=value, report=report)
            transaction.on_commit(lambda: _notify(alert, "opened", value))
            if rule.retrain:
                queue.retrain_model(model_id=rule.model_id, alert_id=alert.pk)
            return event
        if open_alert is None:
            return None
        Alert.objects.filter(pk=open_alert.pk).update(
            status=Alert.Status.CLOSED, closed_at=timezone.now(), last_value=value
        )
        event = AlertEvent.objects.create(alert=open_alert, kind="closed", value=value, report=report)
        transaction.on_commit(lambda: _notify(open_alert, "closed", value))
        return event


def _notify(alert: Alert, kind: str, value: float) -> None:
    rule = alert.rule
    model = rule.model
    text = f"Alert {kind} on {model.name}: {describe(rule, value, holding=kind == 'opened')}."
    url = f"/models/{model.name}/monitoring/"
    config = MonitoringConfig.objects.filter(model=model).first()
    users = list({user.pk: user for user in [model.owner, *(config.watchers.all() if config else [])]}.values())
    notifications.notify_users(users=users, message=text, url=url)
    emails = [user.email for user in users if user.email]
    if emails:
        send_mail(f"[Model Factory] {text}", text, settings.DEFAULT_FROM_EMAIL, emails)
    notifications.notify_consumers(
        model=model,
        event=f"alert.{kind}",
        subject=f"[Model Factory] {text}",
        message=text,
        payload={"alert": alert.pk, "rule": rule.name, "value": value, "threshold": rule.threshold},
    )
