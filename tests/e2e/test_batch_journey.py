"""A data scientist sets up nightly batch scoring in a real browser: job, schedule, run now, rejects, scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django_celery_beat.models import PeriodicTask

from registry.models import ModelVersion
from scoring.models import BatchJob, BatchReject, BatchScore
from tests.e2e.test_review_journey import sign_in
from tests.scoring.batch_support import customer_table

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_batch_job_is_created_scheduled_and_run_from_the_page(
    live_server: Any, page: Any, production: ModelVersion, author: Any, tmp_path: Path, screenshot: Any
) -> None:
    frame = customer_table(120)
    frame.loc[5, "tenure"] = -4  # below the schema's minimum: rejected, not fatal
    upload = tmp_path / "customers.csv"
    frame.to_csv(upload, index=False)

    sign_in(page, live_server, author.username)
    page.goto(f"{live_server.url}/models/{production.model.name}/batch/")
    page.fill("#id_name", "nightly")
    page.fill("#id_entity_column", "customer_id")
    page.check("input[name=input_kind][value=upload]")
    page.set_input_files("#id_input_file", str(upload))
    page.fill("#id_chunk_rows", "50")
    page.click("#new-job button[type=submit]")
    page.wait_for_selector("#schedule-form")
    assert BatchJob.objects.filter(name="nightly").exists()

    # A bad cron expression is answered in the page, by field.
    page.check("input[name=kind][value=cron]")
    page.fill("#id_crontab", "every night")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_selector("#schedule-form .error")
    assert PeriodicTask.objects.count() == 0

    page.check("input[name=kind][value=cron]")
    page.fill("#id_crontab", "0 2 * * *")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_selector("text=Next run:")
    assert "0 2 * * *" in page.inner_text("#schedule")
    assert PeriodicTask.objects.get().enabled

    page.click("#run-now")
    row = page.wait_for_selector("tr[data-run-row]")
    page.wait_for_selector('tr[data-run-row] [data-field="status"] >> text=Succeeded')
    assert row.query_selector('[data-field="rows_scored"]').inner_text() == "119"
    assert row.query_selector('[data-field="rows_rejected"]').inner_text() == "1"
    assert page.eval_on_selector("progress[data-run-id]", "bar => bar.value === bar.max")
    screenshot("batch-job")

    page.click("tr[data-run-row] a")
    page.wait_for_selector("text=tenure")
    assert "c5" in page.content()  # the rejected row is listed with its entity and reason
    assert BatchReject.objects.get().entity_id == "c5"
    assert BatchScore.objects.count() == 119
