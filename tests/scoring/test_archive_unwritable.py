"""An archive location that refuses writes stops compaction, keeps every hot row, tells admins once per
outage, and is caught up with once it is writable again."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db.models import F

from registry.models import Consumer, ModelVersion, Notification
from scoring.archive import compaction
from scoring.models import ArchivedHour, ArchiveState, Prediction
from tests.scoring.archive_support import archived_ids, later, score


@pytest.fixture
def unwritable(settings: Any, tmp_path: Path) -> str:
    """A location under a regular file: refused even to root (a chmod would not stop the tests' root)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    writable = settings.MF_ARCHIVE_URL
    settings.MF_ARCHIVE_URL = str(blocker / "archive")
    return str(writable)


def test_an_unwritable_location_stops_compaction_keeps_hot_rows_and_alerts_admins_once(
    production: ModelVersion,
    consumer_token: tuple[Consumer, str],
    admin_user: Any,
    manager: Any,
    unwritable: str,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ids = score(consumer_token[1], 20)

    first = compaction.archive_run(now=later(days=15))
    second = compaction.archive_run(now=later(days=15, minutes=15))

    assert first.error and second.error
    assert (first.hours, first.pruned_rows) == (0, 0)
    assert Prediction.objects.count() == 20
    assert not ArchivedHour.objects.exists()
    alerts = Notification.objects.filter(user=admin_user)
    assert alerts.count() == 1  # one alert per outage, not per run
    assert "not writable" in alerts.get().message
    assert not Notification.objects.filter(user=manager).exists()
    assert "refused a write" in caplog.text
    assert ArchiveState.objects.get(kind="predictions").failing_since is not None

    settings.MF_ARCHIVE_URL = unwritable
    caught_up = compaction.archive_run(now=later(days=15, minutes=30))

    assert (caught_up.error, caught_up.hours, caught_up.pruned_rows) == ("", 1, 20)
    assert sorted(archived_ids()) == sorted(ids)
    assert ArchiveState.objects.get(kind="predictions").failing_since is None

    # A new outage, the next day, is a new alert.
    score(consumer_token[1], 5, seed=2)
    Prediction.objects.update(at=F("at") + timedelta(days=1))
    settings.MF_ARCHIVE_URL = str(Path(unwritable).parent / "not-a-directory" / "archive")
    assert compaction.archive_run(now=later(days=1, hours=2)).error
    assert alerts.count() == 2
