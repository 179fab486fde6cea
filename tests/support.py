"""Shortcuts shared by tests of several apps (plain helpers, not fixtures: import them where needed)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework.test import APIClient

from monitoring.models import Report
from registry.choices import VersionStatus
from registry.models import CheckRun, ModelVersion


def force_checks_passed(version: ModelVersion) -> ModelVersion:
    """Stand-in for review and real checks (covered elsewhere): the version is ready to go live.

    Its check runs are marked passed (a passed one is added if it has none) and its status is set to
    checks_passed, rather than measured: what the checks find, and how long they take, is not under test."""
    now = timezone.now()
    if not CheckRun.objects.filter(version=version).update(status=CheckRun.Status.PASSED, finished_at=now):
        CheckRun.objects.create(version=version, status=CheckRun.Status.PASSED, finished_at=now)
    ModelVersion.objects.filter(pk=version.pk).update(status=VersionStatus.CHECKS_PASSED)
    version.refresh_from_db()
    return version


def report_over_last_hour(client: APIClient, capture: Any) -> Report:
    """Ask for a report of churn over the last hour through the API and let its (eager) task run, as after
    a real commit; the report, as stored."""
    now = timezone.now()
    window = {"start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(minutes=1)).isoformat()}
    with capture(execute=True):
        created = client.post("/api/models/churn/reports/", window, format="json")
    assert created.status_code == 202, created.content
    return Report.objects.get(pk=created.json()["id"])
