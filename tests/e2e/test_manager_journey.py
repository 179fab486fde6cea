"""A manager, in a real browser, finds the model in trouble, its cause and what is being done about it
from the dashboard's text alone, and the monitoring page's verdicts agree with the open alerts."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from monitoring import services
from monitoring.models import Alert, AlertRule, MonitoringConfig, Report, RetrainingRecipe, RetrainingRun
from registry import roles
from registry.choices import VersionStatus
from registry.models import ModelVersion
from tests.e2e.test_review_journey import sign_in
from tests.factories import RegisteredModelFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RECIPE = "tests.monitoring.test_actuals_alerts:train_churn"


def _calm_model(author: Any) -> None:
    """A second model in production whose last report found nothing: the dashboard must rank it below."""
    calm = RegisteredModelFactory.create(name="calm", title="Calm model", owner=author)
    version = ModelVersion.objects.create(model=calm, number=1, status="production", author=author, review_round=1)
    now = timezone.now()
    Report.objects.create(
        model=calm, version=version, window_start=now - timedelta(days=1), window_end=now,
        status=Report.Status.DONE, drift_share=0.0, dataset_drift=False, performance={"roc_auc": 0.9},
        results={"dataset": {"columns": {"x": {"drifted": False}}}},
    )  # fmt: skip


def test_a_manager_reads_the_drifting_model_its_cause_and_its_retraining(
    live_server: Any,
    page: Any,
    production: ModelVersion,
    traffic: list[str],
    author: Any,
    training_file: str,
    screenshot: Any,
) -> None:
    model = production.model
    _calm_model(author)
    MonitoringConfig.objects.update_or_create(
        model=model, defaults={"slice_columns": ["contract"], "min_slice_rows": 50}
    )
    RetrainingRecipe.objects.create(model=model, callable_path=RECIPE, data_path=training_file, created_by=author)
    AlertRule.objects.create(
        model=model, name="Monthly drift", metric="drift_share", slice="contract=monthly", comparison=">",
        threshold=0.05, retrain=True, created_by=author,
    )  # fmt: skip
    now = timezone.now()
    # The report's task runs as its request commits; its alert asks for a retraining, which runs in turn.
    report = services.report_request(actor=author, model=model, start=now - timedelta(hours=1), end=now)
    report.refresh_from_db()
    assert report.status == Report.Status.DONE, report.error
    alert = Alert.objects.get(rule__name="Monthly drift")
    assert alert.status == Alert.Status.OPEN
    retrained = RetrainingRun.objects.get().version
    assert retrained is not None and retrained.status == VersionStatus.IN_REVIEW

    manager: Any = UserFactory(username="mona", role=roles.MANAGER)
    sign_in(page, live_server, manager.username)
    page.goto(f"{live_server.url}/monitoring/")
    page.wait_for_selector('[data-model="churn"] .sparkline .main-svg')
    screenshot("manager-dashboard")
    tiles = page.locator(".tile")
    assert tiles.first.get_attribute("data-model") == "churn"  # in trouble, so first
    assert tiles.first.get_attribute("data-health") == "red"
    text = re.sub(r"\s+", " ", tiles.first.inner_text())
    # Which model, why (the rule, the slice, the value and its threshold), and what is being done.
    assert re.search(
        r"Monthly drift \(Share of drifted features in contract=monthly\) is [0-9.]+, above 0\.05", text
    ), text
    assert "retrained v2 in review: 0 of 1 approval" in text, text
    assert page.locator('[data-model="calm"]').get_attribute("data-health") == "green"

    tiles.first.click()
    page.wait_for_selector("#slice-verdicts")
    opened = page.locator("#alerts li").all_inner_texts()
    assert len(opened) == 1 and opened[0].startswith("Monthly drift")
    # Each slice's verdict under the rule agrees with the alert: open where it is open, and nowhere else.
    for row in page.locator("#slice-verdicts tbody tr").all():
        verdict = row.inner_text()
        expected_open = row.get_attribute("data-slice") == "contract=monthly"
        assert ("alert open" in verdict) == expected_open, verdict
    monthly = page.locator('#slice-verdicts tr[data-slice="contract=monthly"]').inner_text()
    assert "Monthly drift (share > 0.05): alert open" in re.sub(r"\s+", " ", monthly)
    screenshot("manager-monitoring")

    page.click(f"#retraining a[href='{retrained.get_absolute_url()}']")
    page.wait_for_selector("#review")
    assert "In review" in page.locator(".pagehead").inner_text()
    assert "Monthly drift" in page.locator(".prose").first.inner_text()  # the release notes name the trigger
