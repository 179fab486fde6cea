"""A manager opens the dashboard and a model's monitoring page in a real browser; the charts render."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from monitoring import services
from monitoring.models import MonitoringConfig, Report
from registry import roles
from registry.models import ModelVersion
from tests.e2e.test_review_journey import sign_in
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_and_monitoring_page_draw_their_charts(
    live_server: Any, page: Any, production: ModelVersion, traffic: list[str], author: Any, screenshot: Any
) -> None:
    MonitoringConfig.objects.update_or_create(
        model=production.model,
        defaults={"slice_columns": ["contract"], "sensitive_columns": ["contract"], "min_slice_rows": 50},
    )
    now = timezone.now()
    report = services.report_request(actor=author, model=production.model, start=now - timedelta(hours=1), end=now)
    report.refresh_from_db()
    assert report.status == Report.Status.DONE, report.error
    manager: Any = UserFactory(username="mona", role=roles.MANAGER)

    sign_in(page, live_server, manager.username)
    page.goto(f"{live_server.url}/monitoring/")
    tile = page.wait_for_selector('[data-model="churn"]')
    assert tile.get_attribute("data-health") == "amber"  # the charges of one customer in three moved
    page.wait_for_selector('[data-model="churn"] .sparkline .main-svg')
    screenshot("monitoring-dashboard")

    tile.click()
    page.wait_for_selector('[data-chart="chart-slices"] .main-svg')
    for chart in ("performance", "drift", "slices", "slice-performance", "distribution", "fairness"):
        assert page.query_selector(f'[data-chart="chart-{chart}"] .main-svg'), chart
    assert "charges" in page.inner_text("#drill")
    _sort_the_drift_table(page)
    page.click("#slices a >> text=contract=monthly")
    page.wait_for_selector('[data-chart="chart-distribution"] .main-svg')
    assert "current (contract=monthly)" in page.inner_text('[data-chart="chart-distribution"]')
    screenshot("monitoring-model")


def _sort_the_drift_table(page: Any) -> None:
    """Headings sort the drift table (static/monitoring/sort.js), by mouse and by keyboard."""
    table = page.locator("#drift-table")
    assert table.locator("tbody tr svg.thumbnail title").count() == table.locator("tbody tr").count()

    def columns() -> list[str]:
        found: list[str] = table.locator("tbody tr").evaluate_all("rows => rows.map(row => row.dataset.column)")
        return found

    def statistics() -> list[float]:
        keys = table.locator("tbody td:nth-child(5)").evaluate_all("cells => cells.map(cell => cell.dataset.sort)")
        return [float(key) for key in keys]

    def heading_sort(button: Any) -> str | None:
        found: str | None = button.locator("xpath=..").get_attribute("aria-sort")
        return found

    served = columns()
    assert served[0] == "charges"  # drifted first, as the server orders it
    feature = table.get_by_role("button", name="Feature")
    feature.click()
    assert columns() == sorted(served, key=str.lower)
    assert heading_sort(feature) == "ascending"
    assert table.locator("th[aria-sort]").count() == 1  # the verdict's heading no longer claims the order
    feature.click()
    assert columns() == sorted(served, key=str.lower, reverse=True) != served
    assert heading_sort(feature) == "descending"
    statistic = table.get_by_role("button", name="Statistic")
    statistic.focus()
    page.keyboard.press("Enter")
    assert statistics() == sorted(statistics())
    assert heading_sort(statistic) == "ascending"


def test_the_owner_adds_an_alert_rule_and_a_retraining_schedule_in_the_page(
    live_server: Any, page: Any, production: ModelVersion, author: Any, training_file: str, screenshot: Any
) -> None:
    MonitoringConfig.objects.create(model=production.model, slice_columns=["contract"])
    sign_in(page, live_server, author.username)
    page.goto(f"{live_server.url}/models/churn/monitoring/")
    page.fill("#alert-rule-form [name=name]", "monthly-drift")
    page.select_option("#alert-rule-form [name=metric]", "drift_share")
    page.fill("#alert-rule-form [name=slice]", "region=south")
    page.select_option("#alert-rule-form [name=comparison]", ">")
    page.fill("#alert-rule-form [name=threshold]", "0.3")
    page.click("#alert-rule-form button[type=submit]")
    page.wait_for_selector(".messages >> text=slices: contract")  # not a slice of this model
    page.fill("#alert-rule-form [name=name]", "monthly-drift")
    page.select_option("#alert-rule-form [name=metric]", "drift_share")
    page.fill("#alert-rule-form [name=slice]", "contract=monthly")
    page.select_option("#alert-rule-form [name=comparison]", ">")
    page.fill("#alert-rule-form [name=threshold]", "0.3")
    page.check("#alert-rule-form [name=retrain]")
    page.click("#alert-rule-form button[type=submit]")
    page.wait_for_selector("text=Alert rule 'monthly-drift' added")
    assert "contract=monthly" in page.inner_text("#alert-rules table")

    page.click("#retraining summary")
    page.fill("#recipe-form [name=callable_path]", "tests.monitoring.test_actuals_alerts:train_churn")
    page.fill("#recipe-form [name=data_path]", training_file)
    page.click("#recipe-form button[type=submit]")
    page.wait_for_selector("text=Retraining recipe saved")
    page.click("#retraining summary")
    page.check("#retraining-schedule-form input[value=interval]")
    page.fill("#retraining-schedule-form [name=retraining-every_minutes]", "1000000")
    page.click("#retraining-schedule-form button[type=submit]")
    page.wait_for_selector(".messages >> text=from 1 to a year")  # refused, with the field named
    page.click("#retraining summary")
    page.check("#retraining-schedule-form input[value=interval]")
    page.fill("#retraining-schedule-form [name=retraining-every_minutes]", "10080")
    page.click("#retraining-schedule-form button[type=submit]")
    page.wait_for_selector("text=Retraining now runs every 10080 minutes")
    screenshot("monitoring-rules-retraining")


def test_evidently_report_is_prepared_on_request_and_shown_framed_with_its_sample(
    live_server: Any,
    page: Any,
    production: ModelVersion,
    traffic: list[str],
    author: Any,
    screenshot: Any,
    settings: Any,
) -> None:
    settings.MF_EVIDENTLY_SAMPLE_ROWS = 120
    now = timezone.now()
    report = services.report_request(actor=author, model=production.model, start=now - timedelta(hours=1), end=now)
    sign_in(page, live_server, author.username)
    page.goto(f"{live_server.url}/models/churn/monitoring/?report={report.pk}")
    assert "not prepared yet" in page.inner_text(".pagehead")
    page.click("#evidently-link")
    page.click("#prepare-evidently")  # tests run tasks eagerly: built once the request commits
    sample = page.wait_for_selector("#evidently-sample")
    assert "Computed by Evidently on a sample of 120 of 300 predictions" in sample.inner_text()
    # Its scripts run in the sandboxed frame, which the page's own policy lets it show.
    frame = page.frame_locator("iframe.evidently-frame")
    # The body exists before Evidently's scripts have drawn into it: wait for the text, not the element.
    expect(frame.locator("body")).to_contain_text("Dataset Drift", timeout=30_000)
    screenshot("monitoring-evidently")
