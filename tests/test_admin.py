"""The admin shows every app's records, read-only where a service (with its audit row) makes the change."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from monitoring import reports
from monitoring.models import MonitoringConfig, Report
from scoring.archive import compaction
from scoring.models import ArchivedHour
from tests.scoring.archive_support import later

pytestmark = pytest.mark.django_db


def test_every_registered_model_lists_and_shows_its_records(
    traffic: list[str], churn_model: Any, admin_user: Any
) -> None:
    report = Report.objects.create(
        model=churn_model, window_start=later(days=-1), window_end=later(hours=1), requested_by=admin_user
    )
    assert reports.compute(report_id=report.pk).status == Report.Status.DONE  # type: ignore[union-attr]
    compaction.compact(now=later(hours=2))
    assert MonitoringConfig.objects.exists() and ArchivedHour.objects.exists()
    client = Client()
    client.force_login(admin_user)

    registered = {model._meta.app_label for model in admin.site._registry}
    assert {"monitoring", "scoring", "registry"} <= registered
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label not in {"monitoring", "scoring", "registry"}:
            continue
        opts = model._meta
        listed = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert listed.status_code == 200, opts.label
        first = model._default_manager.first()
        if first is not None:
            shown = client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[first.pk]))
            assert shown.status_code == 200, opts.label
        if opts.app_label in {"monitoring", "scoring"}:
            assert not model_admin.has_add_permission(listed.wsgi_request), opts.label


def test_plural_names_read_as_english(admin_user: Any) -> None:
    client = Client()
    client.force_login(admin_user)
    index = client.get("/admin/").content.decode()
    assert "Webhook deliveries" in index and "deliverys" not in index
    assert "Archived hours" in index and "Reports" in index
