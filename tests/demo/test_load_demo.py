"""The demo tells the monitoring story: go-live, traffic, a regional price change, an alert, a retrained version."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from monitoring.models import Alert, Report, RetrainingRun
from registry.choices import VersionStatus
from registry.models import RegisteredModel
from scoring.models import SqlRun

pytestmark = pytest.mark.django_db(transaction=True)


def readme_example(heading: str) -> str:
    """The first Python example under a heading of the README, as a reader copies it."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_demo_drifts_in_one_region_alerts_and_puts_a_retrained_version_in_review(
    live_server: Any, capsys: Any
) -> None:
    out = StringIO()
    call_command("load_demo", customers=20_000, stdout=out)  # reference slices above 1,000 rows, as in the demo
    model = RegisteredModel.objects.get(name="customer-churn")
    statuses = dict(model.versions.values_list("number", "status"))
    assert statuses[1] == VersionStatus.PRODUCTION
    assert statuses[3] == VersionStatus.IN_REVIEW, out.getvalue()[-2000:]
    reports = list(Report.objects.filter(model=model).order_by("window_start"))
    assert len(reports) == 12 and all(r.status == Report.Status.DONE for r in reports)
    south = [r.results["slices"]["region=south"]["drift_share"] for r in reports]
    assert all(share == 0 for share in south[:8]) and all(share > 0 for share in south[8:])
    alert = Alert.objects.get(rule__model=model, status=Alert.Status.OPEN)
    assert alert.opened_by_report == reports[8]
    run = RetrainingRun.objects.get(alert=alert)
    assert run.version is not None and run.version.number == 3 and run.version.parent is not None
    assert "Retrained automatically" in run.version.release_notes

    # The README's SQL example runs as written against the demo (here served on another port).
    exec(readme_example("Scoring with SQL").replace("http://127.0.0.1:8000", live_server.url), {})  # noqa: S102
    printed = capsys.readouterr().out
    assert "customer_id" in printed and "churn" in printed and "p" in printed, printed
    sql_run = SqlRun.objects.get()
    assert (sql_run.function_name, sql_run.version.number, sql_run.user.username) == ("churn_score", 1, "ada")

    call_command("load_demo", stdout=StringIO())  # a second run adds nothing
    assert Report.objects.count() == 12 and model.versions.count() == 3


def test_it_refuses_to_load_anything_when_the_demo_may_not_retrain(settings: Any) -> None:
    settings.MF_RETRAINING_PACKAGES = ["tests"]  # as in production, where no package is allowed by default
    with pytest.raises(CommandError, match=r"demo\.churn:retrain.*MF_RETRAINING_PACKAGES=demo"):
        call_command("load_demo", customers=1_000, stdout=StringIO())
    assert not RegisteredModel.objects.exists()
    assert not get_user_model().objects.exists()
