"""Where a model's monitoring page has nothing to chart, it says which data is missing and how to send it."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

from django.utils import timezone

from monitoring.models import HourlySummary, MonitoringConfig, Report
from registry.choices import ModelTask
from registry.models import ModelVersion, RegisteredModel
from scoring.models import ScoringStats
from tests.factories import RegisteredModelFactory
from tests.monitoring.test_summary_pages import simulate


def report_with(model: RegisteredModel, **values: Any) -> Report:
    end = timezone.now()
    return Report.objects.create(
        model=model, window_start=end - timedelta(days=1), window_end=end, status=Report.Status.DONE, **values
    )


def text(page: str, element_id: str) -> str:
    """The words of the element with `element_id` (its tags dropped, its links kept as `[text](href)`)."""
    found = re.search(rf'<(\w+)[^>]* id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert found, f"no #{element_id}"
    linked = re.sub(r'<a href="([^"]*)"[^>]*>(.*?)</a>', r"[\2](\1)", found.group(2))
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", linked))).strip()


def page_of(client: Any, user: Any, name: str = "churn") -> str:
    client.force_login(user)
    return client.get(f"/models/{name}/monitoring/").content.decode()


def test_a_model_without_reports_says_what_a_report_needs(
    churn_model: RegisteredModel, author: Any, client: Any
) -> None:
    page = page_of(client, author)

    assert text(page, "no-report") == (
        "No report yet. A report compares the predictions logged for this model, sent in real time to "
        "POST /api/models/churn/predict/ or by [batch jobs](/models/churn/batch/), with the reference data "
        "registered with its version. Once predictions are logged, press Run a report now below, or schedule "
        "reports in [Settings](#settings)."
    )
    assert "performance-empty" not in page  # no report says it already


def test_a_manager_is_told_where_reports_come_from_and_offered_no_button(
    churn_model: RegisteredModel, manager: Any, client: Any
) -> None:
    page = page_of(client, manager)

    assert text(page, "no-report").endswith(
        "Reports run on the schedule the model's owner sets, or when a data scientist or reviewer runs one."
    )
    assert 'id="run-report"' not in page


def test_reports_without_actuals_show_how_to_send_them_instead_of_a_performance_chart(
    churn_model: RegisteredModel, author: Any, client: Any
) -> None:
    report_with(churn_model, performance={"rows": 300, "roc_auc": None, "accuracy": None})

    page = page_of(client, author)

    assert 'id="chart-performance"' not in page and 'id="no-report"' not in page
    assert text(page, "performance-empty") == (
        "Performance against actuals No actuals yet, so there is no performance to show. Send the outcomes "
        "with POST /api/models/churn/actuals/ or upload a CSV in [Actuals](#actuals); the next report measures "
        "the model against them."
    )


def test_a_model_without_traffic_names_the_predict_endpoint(
    churn_model: RegisteredModel, author: Any, client: Any
) -> None:
    page = page_of(client, author)

    assert 'id="chart-usage"' not in page and 'id="chart-traffic"' not in page and "usage-empty" not in page
    assert text(page, "traffic-empty") == (
        "Predictions per day No predictions in the last 90 days. Send them in real time to "
        "POST /api/models/churn/predict/ with a consumer token, or run a [batch job](/models/churn/batch/); "
        "their volume, latency and labels show here."
    )


def test_logged_predictions_without_real_time_requests_say_where_those_go(
    production: ModelVersion, author: Any, client: Any
) -> None:
    simulate(production, days=2)
    ScoringStats.objects.all().delete()  # batch traffic only

    page = page_of(client, author)

    assert 'id="chart-traffic"' in page and "traffic-empty" not in page
    assert text(page, "usage-empty") == (
        "Real-time predictions per day No real-time requests in the last 30 days (batch predictions are counted "
        "with the logged ones). Applications send them to POST /api/models/churn/predict/ with a consumer token."
    )


def test_real_time_requests_not_yet_summarised_say_when_they_will_be(
    production: ModelVersion, author: Any, client: Any
) -> None:
    simulate(production, days=1)
    HourlySummary.objects.all().delete()  # the last hours are not archived yet

    page = page_of(client, author)

    assert 'id="chart-usage"' in page and "usage-empty" not in page
    assert text(page, "traffic-empty") == (
        "Logged predictions per day No summarised predictions yet: an hour is summarised once it is archived."
    )


def test_a_report_over_predictions_not_yet_summarised_does_not_say_there_are_none(
    churn_model: RegisteredModel, author: Any, client: Any
) -> None:
    report = report_with(churn_model, rows_current=300, performance={"rows": 300})

    page = page_of(client, author)

    assert text(page, "traffic-empty") == (
        f"Predictions per day Report #{report.pk} judged 300 logged predictions, but none is summarised per day "
        "yet: an hour is summarised once it is archived."
    )


def test_fairness_says_it_needs_sensitive_columns_then_actuals(
    churn_model: RegisteredModel, author: Any, client: Any
) -> None:
    page = page_of(client, author)
    assert text(page, "fairness-empty") == (
        "Fairness is not checked: no sensitive columns are set. Choose them among the slice columns in "
        "[Settings](#settings)."
    )

    MonitoringConfig.objects.create(model=churn_model, slice_columns=["contract"], sensitive_columns=["contract"])
    groups = {"monthly": {"rows": 150, "positive_rate": 0.4}, "yearly": {"rows": 150, "positive_rate": 0.3}}
    gaps = {"positive_rate": 0.1, "true_positive_rate": None, "false_positive_rate": None}
    report_with(churn_model, results={"fairness": {"contract": {"groups": groups, "gaps": gaps, "threshold": 0.2}}})
    page = page_of(client, author)
    assert "fairness-empty" not in page and 'id="chart-fairness"' in page
    assert text(page, "fairness-needs-actuals") == (
        "Fairness compares true and false positive rates between groups, and those need actuals: this window had "
        "too few, so only predicted positive rates are compared. Send them with POST /api/models/churn/actuals/ "
        "or upload a CSV in [Actuals](#actuals)."
    )

    for group in groups.values():
        group.update(true_positive_rate=0.7, false_positive_rate=0.2)
    report_with(churn_model, results={"fairness": {"contract": {"groups": groups, "gaps": gaps, "threshold": 0.2}}})
    assert "fairness-needs-actuals" not in page_of(client, author)


def test_a_regressor_is_not_asked_for_sensitive_columns(author: Any, client: Any) -> None:
    RegisteredModelFactory.create(name="prices", owner=author, task=ModelTask.REGRESSION)

    page = page_of(client, author, "prices")

    assert 'id="fairness"' not in page  # fairness gaps are measured on classifiers' positive predictions
