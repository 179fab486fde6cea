"""Alert rules and retraining managed from the monitoring page and the API: recipe, schedule, run now."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from monitoring import charts
from monitoring.models import AlertRule, MonitoringConfig, Report, RetrainingRecipe, RetrainingRun
from monitoring.retraining import load_callable
from monitoring.tasks import retrain_model
from registry.choices import VersionStatus
from registry.models import AuditEvent, ModelVersion

RECIPE = "tests.monitoring.test_actuals_alerts:train_churn"


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_owner_adds_an_alert_rule_in_the_page(production: ModelVersion, author: Any) -> None:
    client = signed_in(author)
    response = client.post(
        "/models/churn/monitoring/alert-rules/",
        {"name": "auc-low", "metric": "performance", "parameter": "roc_auc", "comparison": "<", "threshold": "0.8"},
        follow=True,
    )
    assert "Alert rule &#x27;auc-low&#x27; added" in response.content.decode()
    rule = AlertRule.objects.get()
    assert (rule.metric, rule.parameter, rule.comparison, rule.threshold, rule.retrain) == (
        "performance",
        "roc_auc",
        "<",
        0.8,
        False,
    )
    assert AuditEvent.objects.filter(action="alert_rule.created").count() == 1
    page = client.get("/models/churn/monitoring/").content.decode()
    assert "auc-low" in page and "clear" in page


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "", "metric": "performance", "comparison": "<", "threshold": "0.8"}, "name: This field is required"),
        ({"name": "x", "metric": "accuracy", "comparison": "<", "threshold": "0.8"}, "metric: Select a valid choice"),
        ({"name": "x", "metric": "drift_share", "comparison": "<", "threshold": "high"}, "threshold: Enter a number"),
        (
            {"name": "x", "metric": "performance", "parameter": "auc", "comparison": "<", "threshold": "1"},
            "parameter: Give one of the classification metrics: accuracy",
        ),
        (
            {"name": "x", "metric": "feature_drift", "parameter": "age", "comparison": ">", "threshold": "0"},
            "parameter: Not an input of version 1: tenure, charges, contract",
        ),
        (
            {"name": "x", "metric": "drift_share", "slice": "region=south", "comparison": ">", "threshold": "0"},
            "slice: Give column=value of a slice column, or a named slice (slices: contract)",
        ),
        (
            {"name": "x", "metric": "slice_performance", "parameter": "f1", "comparison": "<", "threshold": "1"},
            "slice: Give the slice, e.g. &quot;region=south&quot;",
        ),
        (
            {"name": "x", "metric": "prediction_volume", "slice": "contract=a", "comparison": "<", "threshold": "1"},
            "slice: This metric is for the whole window",
        ),
        (
            {"name": "x", "metric": "fairness_gap", "parameter": "contract:odds", "comparison": ">", "threshold": "0"},
            "parameter: Give a sensitive column (contract), optionally with",
        ),
    ],
)
def test_a_bad_alert_rule_is_refused_with_the_field_named(
    production: ModelVersion, author: Any, fields: dict[str, str], message: str
) -> None:
    MonitoringConfig.objects.create(model=production.model, slice_columns=["contract"], sensitive_columns=["contract"])
    response = signed_in(author).post("/models/churn/monitoring/alert-rules/", fields, follow=True)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AlertRule.objects.exists()


def test_a_manager_may_not_add_alert_rules(production: ModelVersion, manager: Any) -> None:
    response = signed_in(manager).post(
        "/models/churn/monitoring/alert-rules/",
        {"name": "x", "metric": "drift_share", "comparison": ">", "threshold": "0.5"},
        follow=True,
    )
    assert "Only the model&#x27;s owner" in response.content.decode()
    assert not AlertRule.objects.exists()


def test_the_recipe_is_checked_before_it_is_saved(production: ModelVersion, author: Any, training_file: str) -> None:
    client = signed_in(author)
    bad = {"callable_path": "tests.nowhere:train", "data_path": "../etc/passwd"}
    page = client.post("/models/churn/monitoring/retraining/", bad, follow=True).content.decode()
    assert "callable_path: Cannot import it" in page
    assert "outside the batch input folder" in page
    anywhere = {"callable_path": "os:system", "data_path": training_file}
    page = client.post("/models/churn/monitoring/retraining/", anywhere, follow=True).content.decode()
    assert "&#x27;os&#x27; is not in an allowed package (MF_RETRAINING_PACKAGES: demo, tests)" in page
    both = client.post(
        "/models/churn/monitoring/retraining/",
        {"callable_path": RECIPE, "data_path": training_file, "data_query": "SELECT 1"},
        follow=True,
    ).content.decode()
    assert "either a training-data file or a SQL query" in both
    assert not RetrainingRecipe.objects.exists()

    saved = client.post(
        "/models/churn/monitoring/retraining/", {"callable_path": RECIPE, "data_path": training_file}, follow=True
    )
    assert "Retraining recipe saved" in saved.content.decode()
    recipe = RetrainingRecipe.objects.get()
    assert (recipe.callable_path, recipe.data_path) == (RECIPE, training_file)
    assert AuditEvent.objects.filter(action="retraining.recipe_saved").count() == 1


def test_an_instance_that_allows_no_recipe_package_says_so(settings: Any) -> None:
    settings.MF_RETRAINING_PACKAGES = []
    with pytest.raises(
        ValueError, match=r"'demo.churn' is not in an allowed package \(MF_RETRAINING_PACKAGES allows none\)"
    ):
        load_callable("demo.churn:retrain")


def test_a_sql_recipe_may_only_read_a_configured_scoring_database(production: ModelVersion, author: Any) -> None:
    page = (
        signed_in(author)
        .post(
            "/models/churn/monitoring/retraining/",
            {"callable_path": RECIPE, "data_query": "SELECT * FROM auth_user", "data_connection": ""},
            follow=True,
        )
        .content.decode()
    )
    assert "is not a scoring database" in page
    assert not RetrainingRecipe.objects.exists()


def test_retraining_on_a_schedule_registers_a_version_in_review(
    production: ModelVersion, author: Any, training_file: str
) -> None:
    client = signed_in(author)
    client.post("/models/churn/monitoring/retraining/", {"callable_path": RECIPE, "data_path": training_file})
    response = client.post(
        "/models/churn/monitoring/retraining/schedule/",
        {"retraining-kind": "cron", "retraining-crontab": "0 3 * * 1", "retraining-enabled": "on"},
        follow=True,
    )
    assert "Retraining now runs" in response.content.decode()
    task = PeriodicTask.objects.get(name="retraining:churn")
    assert task.task == "monitoring.tasks.retrain_model"
    assert task.crontab is not None and task.crontab.day_of_week == "1"
    assert RetrainingRecipe.objects.get().periodic_task == task

    # What beat does when the time comes.
    retrain_model.apply(args=json.loads(task.args), kwargs=json.loads(task.kwargs))
    run = RetrainingRun.objects.get()
    assert (run.status, run.trigger, run.alert) == ("registered", "schedule", None), run.error
    assert run.version is not None and run.version.status == VersionStatus.IN_REVIEW
    assert "Triggered by the retraining schedule" in run.version.release_notes
    assert ModelVersion.objects.get(pk=production.pk).status == VersionStatus.PRODUCTION

    page = client.get("/models/churn/monitoring/").content.decode()
    assert "runs <strong>at 03:00 am, only on monday" in page.lower() or "03:00" in page
    assert f"v{run.version.number}</a> (in review)" in page

    client.post("/models/churn/monitoring/retraining/schedule/", {"retraining-kind": "none"})
    assert not PeriodicTask.objects.filter(name="retraining:churn").exists()
    assert AuditEvent.objects.filter(action__in=["retraining.scheduled", "retraining.unscheduled"]).count() == 2


def test_retrain_now_runs_on_a_worker_and_names_who_asked(
    production: ModelVersion, author: Any, training_file: str, django_capture_on_commit_callbacks: Any
) -> None:
    client = signed_in(author)
    nothing = client.post("/models/churn/monitoring/retraining/run/", follow=True).content.decode()
    assert "has no retraining recipe yet" in nothing
    client.post("/models/churn/monitoring/retraining/", {"callable_path": RECIPE, "data_path": training_file})
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/models/churn/monitoring/retraining/run/")
    run = RetrainingRun.objects.get()
    assert (run.status, run.trigger, run.requested_by) == ("registered", "manual", author), run.error
    assert run.version is not None
    assert "Triggered by ada starting it by hand" in run.version.release_notes


def test_the_recipe_api(production: ModelVersion, author: Any, manager: Any, api: Any, training_file: str) -> None:
    client = api(author)
    assert client.get("/api/models/churn/retraining/").status_code == 404
    refused = client.put("/api/models/churn/retraining/", {"callable_path": "nope"}, format="json")
    assert refused.status_code == 400
    assert "callable_path" in refused.json()
    saved = client.put(
        "/api/models/churn/retraining/", {"callable_path": RECIPE, "data_path": training_file}, format="json"
    )
    assert saved.status_code == 200, saved.json()
    assert client.get("/api/models/churn/retraining/").json()["callable_path"] == RECIPE
    assert api(manager).post("/api/models/churn/retraining/run/").status_code == 403
    assert client.post("/api/models/churn/retraining/run/").status_code == 202


def test_performance_per_slice_is_charted_over_windows(production: ModelVersion) -> None:
    now = timezone.now()
    reports = [
        Report(
            model=production.model,
            window_start=now - timedelta(days=day + 1),
            window_end=now - timedelta(days=day),
            status=Report.Status.DONE,
            performance={"roc_auc": 0.8},
            results={
                "slices": {
                    "region=north": {"performance": {"roc_auc": 0.82}},
                    "region=south": {"performance": {"roc_auc": 0.7 - day / 100}},
                    "region=east": {"too_small": True},
                }
            },
        )
        for day in (2, 1, 0)
    ]
    figure = charts.slice_performance_trend(reports, "roc_auc")
    assert figure is not None
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["region=north", "region=south", "whole window"]
    assert figure["data"][1]["y"] == pytest.approx([0.68, 0.69, 0.7])
    assert charts.slice_performance_trend(reports, "rmse") is None
