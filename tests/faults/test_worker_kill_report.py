"""A worker killed with SIGKILL in the middle of a drift report: after a restart, exactly one report.

The kill lands while the worker is storing the report: the test holds an uncommitted open alert for
the model's rule, so the worker, having computed everything, blocks on the one-open-alert-per-rule
constraint inside its storing transaction. Whatever of the report it had written must vanish with
it, and the redelivered task must then store the report and open its alert exactly once.
"""

from __future__ import annotations

import signal
import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from monitoring import services
from monitoring.models import Alert, AlertEvent, AlertRule, Report
from registry.models import ModelVersion
from tests.test_worker import start_worker, wait_for  # noqa: F401  (start_worker is a fixture)

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.CELERY_BROKER_URL.startswith("redis"),
        reason="redelivery of a killed worker's task needs a broker with acknowledgements (Redis in CI)",
    ),
]

VISIBILITY_SECONDS = "3"


def worker_waits_on_the_alert_insert() -> bool:
    """True once another session is blocked inserting into monitoring_alert (seen from this session)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # activity is otherwise frozen per transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query ILIKE 'INSERT INTO \"monitoring_alert\"%%' AND pid <> pg_backend_pid()"
        )
        return bool(cursor.fetchone()[0])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="watches the worker's lock wait in pg_stat_activity")
def test_a_report_survives_a_worker_killed_while_storing_it_with_exactly_one_result(
    traffic: list[str],
    production: ModelVersion,
    author: Any,
    start_worker: Any,  # noqa: F811
) -> None:
    model = production.model
    rule = AlertRule.objects.create(
        model=model, name="volume", metric="prediction_volume", comparison=">", threshold=0, created_by=author
    )
    now = timezone.now()
    # Queued before any worker runs: the message waits in Redis while the test sets its trap.
    report = services.report_request(actor=author, model=model, start=now - timedelta(hours=1), end=now)
    assert Report.objects.filter(model=model).count() == 1

    with transaction.atomic():
        Alert.objects.create(rule=rule, opened_by_report=report, last_value=0)
        first, first_log = start_worker("first", MF_BROKER_VISIBILITY_TIMEOUT_SECONDS=VISIBILITY_SECONDS)
        waiting = wait_for(lambda: worker_waits_on_the_alert_insert() or first.poll() is not None, 120, 0.2)
        assert waiting and first.poll() is None, first_log.read_text()[-3000:]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        # Killed mid-write: nothing of its transaction is visible, the report is still to be done.
        assert Report.objects.get(pk=report.pk).status == Report.Status.RUNNING
        transaction.set_rollback(True)  # the blocker never existed

    # Past the visibility timeout the next worker takes back the task the killed one held unacknowledged.
    time.sleep(float(VISIBILITY_SECONDS) + 1)
    _, second_log = start_worker("second", MF_BROKER_VISIBILITY_TIMEOUT_SECONDS=VISIBILITY_SECONDS)

    def finished() -> bool:
        return Report.objects.get(pk=report.pk).status != Report.Status.RUNNING

    assert wait_for(finished, 120, 0.5), second_log.read_text()[-3000:]
    report.refresh_from_db()
    assert report.status == Report.Status.DONE, report.error
    assert report.rows_current == len(traffic)
    assert Report.objects.filter(model=model).count() == 1
    alert = Alert.objects.get(rule=rule)
    assert (alert.status, alert.opened_by_report_id) == (Alert.Status.OPEN, report.pk)
    assert list(AlertEvent.objects.values_list("kind", flat=True)) == ["opened"]
    assert "compute_report" in second_log.read_text()
