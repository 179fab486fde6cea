"""Monitoring pages: the managers' dashboard and a model's monitoring page, read from stored reports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from monitoring import charts, selectors, services
from monitoring.drift import DATASET_DRIFT_SHARE
from monitoring.forms import AlertRuleForm, MonitoringConfigForm, RetrainingRecipeForm
from monitoring.models import EvidentlyReport, MonitoringConfig, Report, RetrainingRecipe
from monitoring.permissions import (
    ACTUALS_REFUSAL,
    may_configure_monitoring,
    may_record_actuals,
    may_request_reports,
)
from registry import schedules
from registry.choices import ModelTask
from registry.forms import flash_errors
from registry.models import RegisteredModel
from scoring.forms import ScheduleForm, schedule_form_apply

TREND_METRICS = {"classification": ["roc_auc", "accuracy", "f1"], "regression": ["rmse", "mae", "r2"]}


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    tiles = selectors.dashboard_tiles()
    for tile in tiles:
        tile.chart = charts.sparkline(tile.sparkline)  # type: ignore[attr-defined]
    reported = [tile for tile in tiles if tile.health != "grey"]
    apart = [tile for tile in tiles if tile.health == "grey"]
    return render(request, "monitoring/dashboard.html", {"tiles": reported, "apart": apart})


@require_GET
def model_monitoring(request: HttpRequest, name: str) -> HttpResponse:
    model = get_object_or_404(RegisteredModel, name=name)
    config = MonitoringConfig.objects.filter(model=model).first()
    requested = request.GET.get("report", "")
    latest = selectors.latest_report(model=model, report_id=int(requested) if requested.isdigit() else None)
    history = selectors.model_reports(model=model, slices=latest.results.get("slices", {}) if latest else ())
    markers = selectors.deployment_markers(model=model)
    figures: dict[str, object] = {}
    columns: list[str] = []
    slices: list[str] = []
    column = slice_name = ""
    if history:
        registered = latest.version.metrics if latest and latest.version else {}
        performance = charts.performance_trend(history, TREND_METRICS[model.task], registered, markers=markers)
        if performance:
            figures["performance"] = performance
        columns = list(latest.results.get("columns", [])) if latest else []
        figures["drift"] = charts.drift_over_time(history, columns)
    if latest is not None:
        slices = sorted(latest.results.get("slices", {}))
        if slices:
            figures["slices"] = charts.slice_heatmap(latest)
        column = request.GET.get("column", "")
        if column not in columns:
            drifted = [c for c, v in latest.results.get("dataset", {}).get("columns", {}).items() if v["drifted"]]
            column = drifted[0] if drifted else (columns[0] if columns else "")
        slice_name = request.GET.get("slice", "")
        if slice_name not in slices:
            slice_name = ""
        distribution = charts.distributions(latest, column, slice_name) if column else None
        if distribution:
            figures["distribution"] = distribution
        fairness = charts.fairness_gaps(latest)
        if fairness:
            figures["fairness"] = fairness
    if history:
        slice_trend = charts.slice_performance_trend(history, TREND_METRICS[model.task][0], markers=markers)
        if slice_trend:
            figures["slice_performance"] = slice_trend
    usage = selectors.daily_usage(model=model)
    if usage:
        figures["usage"] = charts.volume_and_latency(usage, markers=markers)
    traffic = selectors.daily_traffic(model=model)
    if traffic:
        figures["traffic"] = charts.traffic_trend(traffic, markers=markers)
    recipe = selectors.retraining_recipe(model=model)
    rules = list(selectors.alert_rules(model=model))
    return render(
        request,
        "monitoring/model.html",
        {
            "model": model,
            "config": config,
            "latest": latest,
            "figures": figures,
            "columns": columns,
            "slices": slices,
            "column": column,
            "slice_name": slice_name,
            "slice_rows": selectors.slice_verdicts(report=latest, rules=rules) if latest else [],
            "drift_rows": selectors.drift_table(report=latest, slice_name=slice_name) if latest else [],
            "fairness_breaches": selectors.fairness_breaches(report=latest) if latest else [],
            # Reports measure fairness on a classifier's positive predictions only.
            "fairness_unconfigured": model.task == ModelTask.CLASSIFICATION
            and not (config and config.sensitive_columns),
            "fairness_without_actuals": selectors.fairness_without_actuals(report=latest) if latest else False,
            "usage_days": selectors.USAGE_DAYS,
            "traffic_days": selectors.TRAFFIC_DAYS,
            "dataset_rule": DATASET_DRIFT_SHARE,
            "recent": selectors.recent_reports(model=model),
            "alerts": selectors.open_alerts(model=model),
            "may_configure": may_configure_monitoring(request.user, model),
            "may_record_actuals": may_record_actuals(request.user),
            "may_request_reports": may_request_reports(request.user),
            "window_alerts": selectors.window_alerts(report=latest) if latest else None,
            "unreadable": selectors.report_unreadable(report=latest) if latest else None,
            "evidently": selectors.evidently_report_of(report=latest) if latest else None,
            "watching": bool(config and config.watchers.filter(pk=request.user.pk or 0).exists()),
            "config_form": MonitoringConfigForm(instance=config or MonitoringConfig(model=model)),
            "schedule_form": ScheduleForm.for_task(config.periodic_task if config else None),
            "schedule": schedules.describe(config.periodic_task) if config else None,
            "rules": rules,
            "rule_form": AlertRuleForm(),
            "recipe": recipe,
            "recipe_form": RetrainingRecipeForm(instance=recipe),
            "retraining_schedule": schedules.describe(recipe.periodic_task) if recipe else None,
            "retraining_schedule_form": ScheduleForm.for_task(
                recipe.periodic_task if recipe else None, prefix="retraining"
            ),
            "retraining_runs": selectors.retraining_runs(model=model),
        },
    )


@require_POST
def run_report(request: HttpRequest, name: str) -> HttpResponse:
    """Run now: a report over the configured window (default the last day) ending now."""
    model = get_object_or_404(RegisteredModel, name=name)
    config = MonitoringConfig.objects.filter(model=model).first()
    days = config.window_days if config else 1
    end = timezone.now()
    try:
        report = services.report_request(actor=request.user, model=model, start=end - timedelta(days=days), end=end)
    except (ValidationError, PermissionDenied) as exc:
        flash_errors(request, exc)
    else:
        messages.success(request, f"Report {report.pk} is running; refresh in a moment.")
    return _back(model)


def _done_report(name: str, report_id: int) -> Report:
    reports = Report.objects.select_related("model")
    return get_object_or_404(reports, pk=report_id, model__name=name, status=Report.Status.DONE)


@require_GET
def evidently_report(request: HttpRequest, name: str, report_id: int) -> HttpResponse:
    """Evidently's report of a stored report's window: shown if a worker has built it, else offered."""
    report = _done_report(name, report_id)
    built = selectors.evidently_report_of(report=report)
    return render(
        request,
        "monitoring/evidently.html",
        {
            "model": report.model,
            "report": report,
            "evidently": built,
            "sample_limit": settings.MF_EVIDENTLY_SAMPLE_ROWS,
            "may_request_reports": may_request_reports(request.user),
        },
    )


@require_POST
def evidently_report_request(request: HttpRequest, name: str, report_id: int) -> HttpResponse:
    report = _done_report(name, report_id)
    try:
        services.evidently_report_request(actor=request.user, report=report)
    except (ValidationError, PermissionDenied) as exc:
        flash_errors(request, exc)
    return redirect("monitoring:evidently-report", name, report.pk)


@require_GET
@xframe_options_sameorigin
def evidently_report_html(request: HttpRequest, name: str, report_id: int) -> FileResponse:
    """The built HTML, framed by the Evidently page, in a sandbox: its inline scripts run in an opaque
    origin, with no access to the app's cookies or pages."""
    report = _done_report(name, report_id)
    built = selectors.evidently_report_of(report=report)
    if built is None or built.status != EvidentlyReport.Status.READY:
        raise Http404("Evidently's report of this window is not built.")
    response = FileResponse(built.file.open("rb"), content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = "sandbox allow-scripts; frame-ancestors 'self'"
    return response


def _back(model: RegisteredModel, section: str = "") -> HttpResponse:
    return redirect(reverse("monitoring:model", args=[model.name]) + (f"#{section}" if section else ""))


def _perform(
    request: HttpRequest,
    model: RegisteredModel,
    call: Callable[[], Any],
    success: Callable[[Any], str],
    section: str = "",
    *,
    form: forms.BaseForm | None = None,
) -> HttpResponse:
    """A page form's service call (after the form's own checks, if any): its success message, or each
    refused field; then back to the page."""
    if form is not None and not form.is_valid():
        flash_errors(request, form.errors)
        return _back(model, section)
    try:
        result = call()
    except (ValidationError, PermissionDenied) as exc:
        flash_errors(request, exc)
    else:
        messages.success(request, success(result))
    return _back(model, section)


@require_POST
def configure(request: HttpRequest, name: str) -> HttpResponse:
    model = get_object_or_404(RegisteredModel, name=name)
    config = MonitoringConfig.objects.filter(model=model).first() or MonitoringConfig(model=model)
    form = MonitoringConfigForm(request.POST, instance=config)
    return _perform(
        request,
        model,
        lambda: services.monitoring_configure(actor=request.user, model=model, **form.cleaned_data),
        lambda _: "Monitoring settings saved; they apply from the next report.",
        form=form,
    )


def _save_schedule(
    request: HttpRequest,
    model: RegisteredModel,
    *,
    prefix: str | None,
    what: str,
    set_schedule: Callable[..., MonitoringConfig | RetrainingRecipe],
    unset_schedule: Callable[..., object],
) -> HttpResponse:
    """The schedule forms of the page: reports' and retraining's, both kept as beat rows."""
    form = ScheduleForm(request.POST, prefix=prefix)
    message = schedule_form_apply(
        form,
        what=what,
        unscheduled="now runs only when started",
        set_schedule=lambda **when: set_schedule(actor=request.user, model=model, **when).periodic_task,
        unset_schedule=lambda: unset_schedule(actor=request.user, model=model),
    )
    if message is None:
        flash_errors(request, form.errors)
    else:
        messages.success(request, message)
    return _back(model)


@require_POST
def schedule(request: HttpRequest, name: str) -> HttpResponse:
    model = get_object_or_404(RegisteredModel, name=name)
    return _save_schedule(
        request,
        model,
        prefix=None,
        what="Reporting",
        set_schedule=services.report_schedule,
        unset_schedule=services.report_unschedule,
    )


@require_POST
def retraining_schedule(request: HttpRequest, name: str) -> HttpResponse:
    model = get_object_or_404(RegisteredModel, name=name)
    return _save_schedule(
        request,
        model,
        prefix="retraining",
        what="Retraining",
        set_schedule=services.retraining_schedule,
        unset_schedule=services.retraining_unschedule,
    )


@require_POST
def retraining_recipe(request: HttpRequest, name: str) -> HttpResponse:
    model = get_object_or_404(RegisteredModel, name=name)
    form = RetrainingRecipeForm(request.POST)
    return _perform(
        request,
        model,
        lambda: services.retraining_recipe_save(actor=request.user, model=model, **form.cleaned_data),
        lambda _: "Retraining recipe saved.",
        "retraining",
        form=form,
    )


@require_POST
def retrain_now(request: HttpRequest, name: str) -> HttpResponse:
    model = get_object_or_404(RegisteredModel, name=name)
    return _perform(
        request,
        model,
        lambda: services.retraining_request(actor=request.user, model=model),
        lambda _: "Retraining started; the new version will wait in review.",
        "retraining",
    )


@require_POST
def alert_rule_create(request: HttpRequest, name: str) -> HttpResponse:
    model = get_object_or_404(RegisteredModel, name=name)
    form = AlertRuleForm(request.POST)
    return _perform(
        request,
        model,
        lambda: services.alert_rule_create(actor=request.user, model=model, **form.cleaned_data),
        lambda rule: f"Alert rule {rule.name!r} added; the next report evaluates it.",
        "alert-rules",
        form=form,
    )


@require_POST
def upload_actuals(request: HttpRequest, name: str) -> HttpResponse:
    model = get_object_or_404(RegisteredModel, name=name)
    if not may_record_actuals(request.user):
        # Refused before the upload is read, as the service would: the same refusal, the same way back.
        messages.error(request, ACTUALS_REFUSAL)
        return _back(model)
    upload = request.FILES.get("file")
    if upload is None:
        messages.error(request, "file: choose a CSV file of actuals.")
        return _back(model)
    return _perform(
        request,
        model,
        lambda: services.actuals_ingest(actor=request.user, model=model, rows=services.actuals_from_csv(upload)),
        lambda result: f"{result.created} actuals stored, {result.unchanged} already known.",
    )


@require_POST
def watch(request: HttpRequest, name: str) -> HttpResponse:
    model = get_object_or_404(RegisteredModel, name=name)
    watching = request.POST.get("watch") == "1"
    services.watch(actor=request.user, model=model, watching=watching)
    messages.success(request, "You will be told of its alerts." if watching else "You no longer watch this model.")
    return _back(model)
