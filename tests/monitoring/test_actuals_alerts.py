"""Actuals in, alerts opened and closed once, and the retraining loop."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from monitoring import alerts
from monitoring.models import Actual, Alert, AlertEvent, AlertRule, Report, RetrainingRecipe, RetrainingRun
from registry.choices import VersionStatus
from registry.models import AuditEvent, ModelVersion, RegisteredModel

ROWS = [{"tenure": 3, "charges": 99.5, "contract": "monthly"}, {"tenure": 60, "charges": 25.0, "contract": "yearly"}]


@pytest.fixture
def scored(production: ModelVersion, consumer_token: Any) -> tuple[APIClient, list[str]]:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {consumer_token[1]}")
    answer = client.post(
        "/api/models/churn/predict/", {"dataframe_records": ROWS, "entity_ids": ["c-1", "c-2"]}, format="json"
    ).json()
    return client, answer["prediction_ids"]


def test_actuals_by_prediction_or_entity_are_idempotent(scored: tuple[APIClient, list[str]]) -> None:
    client, ids = scored
    body = {"rows": [{"prediction_id": ids[0], "actual": 1}, {"entity_id": "c-2", "actual": 0}]}
    first = client.post("/api/models/churn/actuals/", body, format="json")
    assert first.status_code == 200, first.json()
    assert first.json() == {"created": 2, "unchanged": 0}
    again = client.post("/api/models/churn/actuals/", body, format="json")
    assert again.json() == {"created": 0, "unchanged": 2}
    assert Actual.objects.count() == 2


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"actual": 1}, "exactly one of prediction_id and entity_id"),
        ({"prediction_id": "x", "actual": 1}, "is not a prediction id"),
        ({"prediction_id": "00000000-0000-0000-0000-000000000000", "actual": 1}, "no prediction"),
        ({"entity_id": "c-1"}, "actual: required"),
        ({"entity_id": "c-1", "actual": [1]}, "must be a number"),
        ({"entity_id": "c-1", "actual": 1, "observed_at": "soon"}, "observed_at"),
        ({"entity_id": "c" * 201, "actual": 1}, "entity_id: longer than 200 characters"),
    ],
)
def test_bad_actuals_are_refused_by_row_and_nothing_is_stored(
    scored: tuple[APIClient, list[str]], row: dict[str, Any], message: str
) -> None:
    client, _ = scored
    response = client.post(
        "/api/models/churn/actuals/", {"rows": [{"entity_id": "c-2", "actual": 0}, row]}, format="json"
    )
    assert response.status_code == 400
    assert message in " ".join(response.json()["rows"])
    assert "row 1" in response.json()["rows"][0]
    assert Actual.objects.count() == 0


def test_a_different_actual_for_the_same_key_is_refused(scored: tuple[APIClient, list[str]]) -> None:
    client, _ = scored
    client.post("/api/models/churn/actuals/", {"rows": [{"entity_id": "c-1", "actual": 1}]}, format="json")
    response = client.post("/api/models/churn/actuals/", {"rows": [{"entity_id": "c-1", "actual": 0}]}, format="json")
    assert response.status_code == 400
    assert "not overwritten" in response.json()["rows"][0]


def report_with(model: RegisteredModel, *, ending: datetime | None = None, **values: Any) -> Report:
    end = ending or timezone.now()
    return Report.objects.create(
        model=model,
        window_start=end - timedelta(days=1),
        window_end=end,
        status=Report.Status.DONE,
        **values,
    )


def test_an_alert_opens_once_stays_open_and_closes(churn_model: RegisteredModel, author: Any) -> None:
    rule = AlertRule.objects.create(
        model=churn_model, name="drift", metric="drift_share", comparison=">", threshold=0.3, created_by=author
    )
    assert alerts.evaluate(report_with(churn_model, drift_share=0.1)) == []
    opened = alerts.evaluate(report_with(churn_model, drift_share=0.5))
    assert [e.kind for e in opened] == ["opened"]
    assert alerts.evaluate(report_with(churn_model, drift_share=0.6)) == []  # still open: no new event
    assert Alert.objects.get(rule=rule).last_value == 0.6
    closed = alerts.evaluate(report_with(churn_model, drift_share=0.2))
    assert [e.kind for e in closed] == ["closed"]
    assert Alert.objects.get(rule=rule).status == "closed"
    assert AlertEvent.objects.count() == 2


def test_a_report_over_an_older_window_never_changes_the_alert(churn_model: RegisteredModel, author: Any) -> None:
    """Alert state follows the newest window judged, not the report that finished last."""
    rule = AlertRule.objects.create(
        model=churn_model, name="drift", metric="drift_share", comparison=">", threshold=0.3, created_by=author
    )
    today = timezone.now()
    assert [e.kind for e in alerts.evaluate(report_with(churn_model, ending=today, drift_share=0.5))] == ["opened"]
    # Last week's window, asked for afterwards, was calm: the open alert stays open.
    assert alerts.evaluate(report_with(churn_model, ending=today - timedelta(days=7), drift_share=0.1)) == []
    assert Alert.objects.get(rule=rule).status == Alert.Status.OPEN
    assert Alert.objects.get(rule=rule).last_value == 0.5
    # A newer window that is calm closes it; the same window computed again is judged too.
    closed = alerts.evaluate(report_with(churn_model, ending=today + timedelta(hours=1), drift_share=0.1))
    assert [e.kind for e in closed] == ["closed"]
    again = alerts.evaluate(report_with(churn_model, ending=today + timedelta(hours=1), drift_share=0.6))
    assert [e.kind for e in again] == ["opened"]
    rule.refresh_from_db()
    assert rule.judged_until == today + timedelta(hours=1)


@pytest.fixture
def auc_rule(churn_model: RegisteredModel, author: Any) -> AlertRule:
    """An alert when the AUROC falls below 0.8."""
    return AlertRule.objects.create(
        model=churn_model,
        name="auc",
        metric="performance",
        parameter="roc_auc",
        comparison="<",
        threshold=0.8,
        created_by=author,
    )


def test_alert_notifications_go_out_once_per_change(
    churn_model: RegisteredModel, author: Any, auc_rule: AlertRule, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        alerts.evaluate(report_with(churn_model, performance={"roc_auc": 0.7}))
        alerts.evaluate(report_with(churn_model, performance={"roc_auc": 0.65}))
    owner_mail = [m for m in mail.outbox if author.email in m.to]
    assert len(owner_mail) == 1
    assert "Alert opened on churn: auc" in owner_mail[0].subject
    assert author.notifications.filter(message__contains="Alert opened").count() == 1


def test_watchers_are_told_of_alerts_with_the_owner(
    churn_model: RegisteredModel,
    author: Any,
    reviewer: Any,
    auc_rule: AlertRule,
    client: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client.force_login(reviewer)
    client.post("/models/churn/monitoring/watch/", {"watch": "1"})
    assert b"Stop watching" in client.get("/models/churn/monitoring/").content
    with django_capture_on_commit_callbacks(execute=True):
        alerts.evaluate(report_with(churn_model, performance={"roc_auc": 0.7}))
    assert sorted(mail.outbox[0].to) == sorted([author.email, reviewer.email])
    assert reviewer.notifications.filter(message__contains="Alert opened").count() == 1
    client.post("/models/churn/monitoring/watch/", {"watch": "0"})
    assert b"Watch: tell me" in client.get("/models/churn/monitoring/").content


@pytest.mark.parametrize(
    ("metric", "parameter", "slice_name", "values", "expected"),
    [
        ("feature_drift", "tenure", "", {"results": {"dataset": {"columns": {"tenure": {"drifted": True}}}}}, 1.0),
        (
            "feature_drift",
            "tenure",
            "region=north",
            {"results": {"slices": {"region=north": {"columns": {"tenure": {"drifted": False}}}}}},
            0.0,
        ),
        ("drift_share", "", "", {"drift_share": 0.25}, 0.25),
        ("drift_share", "", "region=north", {"results": {"slices": {"region=north": {"drift_share": 0.5}}}}, 0.5),
        (
            "slice_performance",
            "accuracy",
            "region=north",
            {"results": {"slices": {"region=north": {"performance": {"accuracy": 0.6}}}}},
            0.6,
        ),
        (
            "fairness_gap",
            "region:true_positive_rate",
            "",
            {"results": {"fairness": {"region": {"gaps": {"true_positive_rate": 0.2}}}}},
            0.2,
        ),
        ("missing_share", "", "", {"results": {"missing_share": {"a": 0.1, "b": 0.3}}}, 0.3),
        ("prediction_volume", "", "", {"rows_current": 42}, 42.0),
    ],
)
def test_each_metric_is_read_from_the_report(
    churn_model: RegisteredModel,
    author: Any,
    metric: str,
    parameter: str,
    slice_name: str,
    values: Any,
    expected: float,
) -> None:
    rule = AlertRule(
        model=churn_model,
        name="r",
        metric=metric,
        parameter=parameter,
        slice=slice_name,
        comparison=">",
        threshold=0,
        created_by=author,
    )
    assert alerts.rule_value(rule, report_with(churn_model, **values)) == expected


def train_churn(frame: pd.DataFrame) -> dict[str, Any]:
    """A retraining recipe, as a user would write one."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    inputs, labels = frame[["tenure", "charges", "contract"]], frame["churned"]
    pipeline = Pipeline(
        [
            (
                "prepare",
                ColumnTransformer(
                    [("numbers", StandardScaler(), ["tenure", "charges"]), ("contract", OneHotEncoder(), ["contract"])]
                ),
            ),
            ("classify", LogisticRegression()),
        ]
    ).fit(inputs, labels)
    return {
        "estimator": pipeline,
        "X_sample": inputs,
        "metrics": {"accuracy": float(pipeline.score(inputs, labels))},
        "golden": (inputs.head(5), pipeline.predict(inputs.head(5))),
        "reference": inputs,
    }


def test_a_retraining_alert_registers_a_new_version_in_review(
    production: ModelVersion, author: Any, training_file: str, django_capture_on_commit_callbacks: Any
) -> None:
    model = production.model
    RetrainingRecipe.objects.create(
        model=model,
        callable_path="tests.monitoring.test_actuals_alerts:train_churn",
        data_path=training_file,
        created_by=author,
    )
    AlertRule.objects.create(
        model=model,
        name="auc",
        metric="performance",
        parameter="roc_auc",
        comparison="<",
        threshold=0.8,
        retrain=True,
        created_by=author,
    )
    with django_capture_on_commit_callbacks(execute=True):
        alerts.evaluate(report_with(model, performance={"roc_auc": 0.7}))
    run = RetrainingRun.objects.get()
    assert run.status == "registered", run.error
    version = run.version
    assert version is not None
    assert version.status == VersionStatus.IN_REVIEW
    assert version.parent == production
    assert "Triggered by the alert **auc**" in version.release_notes
    assert version.metrics["accuracy"] > 0.5
    assert version.files.filter(kind="training_data").exists()
    assert ModelVersion.objects.get(pk=production.pk).status == VersionStatus.PRODUCTION  # never promoted
    # The trail names the retraining and its trigger, on the owner's behalf, never the owner alone.
    trail = AuditEvent.objects.filter(version=version).order_by("pk")
    by_owner = [(event.action, event.via) for event in trail if event.actor == model.owner]
    via = f"retraining, triggered by alert #{run.alert_id} (auc)"
    assert by_owner == [("version.registered", via), ("version.submit", via)]
    assert not AuditEvent.objects.exclude(version=version).filter(via__startswith="retraining").exists()
