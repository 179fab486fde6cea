"""The dashboard answers in ten seconds: which model is in trouble, why, and what is being done."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from monitoring.models import Alert, AlertRule, Report, RetrainingRecipe, RetrainingRun
from registry.models import ModelVersion, RegisteredModel, SignOff
from tests.factories import RegisteredModelFactory

pytestmark = pytest.mark.django_db


def _version(model: Any, number: int, status: str, author: Any, days_ago: float = 30) -> ModelVersion:
    return ModelVersion.objects.create(
        model=model,
        number=number,
        status=status,
        author=author,
        review_round=1,
        status_changed_at=timezone.now() - timedelta(days=days_ago),
    )


def _report(version: ModelVersion, drift_share: float, drifted: list[str] = ()) -> Report:  # type: ignore[assignment]
    now = timezone.now()
    return Report.objects.create(
        model=version.model,
        version=version,
        window_start=now - timedelta(days=1),
        window_end=now,
        status=Report.Status.DONE,
        drift_share=drift_share,
        dataset_drift=bool(drifted),
        performance={"roc_auc": 0.81},
        results={"dataset": {"columns": {c: {"drifted": c in drifted} for c in ["charges", "tenure", *drifted]}}},
    )


def test_tiles_name_the_cause_and_what_is_being_done_most_urgent_first(
    client: Any, author: Any, reviewer: Any, manager: Any, django_assert_max_num_queries: Any
) -> None:
    made: list[RegisteredModel] = [
        RegisteredModelFactory.create(name=name, owner=author) for name in ("calm", "drifting", "alarmed", "silent")
    ]
    calm, drifting, alarmed, silent = made
    _report(_version(calm, 1, "production", author), 0.0)
    _report(
        _version(drifting, 1, "production", author, days_ago=2),
        0.25,
        drifted=["charges", "contract", "region", "tenure2"],
    )
    _version(silent, 1, "production", author)
    old = _version(alarmed, 1, "retired", author)
    _version(alarmed, 3, "production", author, days_ago=0.5)
    on_old = _report(old, 0.1)  # v1's figures: not shown as v3's
    rule = AlertRule.objects.create(
        model=alarmed, name="South drift", metric="drift_share", slice="region=south", comparison=">",
        threshold=0.05, created_by=author,
    )  # fmt: skip
    Alert.objects.create(rule=rule, opened_by_report=on_old, last_value=0.1)
    retrained = _version(alarmed, 4, "in_review", author, days_ago=0.1)
    recipe = RetrainingRecipe.objects.create(model=alarmed, callable_path="x:y", data_path="d", created_by=author)
    RetrainingRun.objects.create(recipe=recipe, status="registered", version=retrained)
    SignOff.objects.create(version=retrained, kind="approval", review_round=1, user=reviewer, evidence={})
    alarmed.required_approvals = 2
    alarmed.save()

    client.force_login(manager)
    with django_assert_max_num_queries(14):
        page = client.get("/monitoring/").content.decode()

    order = [page.index(f'data-model="{name}"') for name in ("alarmed", "drifting", "calm", "silent")]
    assert order == sorted(order)
    assert page.index("No report in the last 30 days") < page.index('data-model="silent"')
    alarmed_tile = page[order[0] : order[1]]
    assert "South drift (Share of drifted features in region=south) is 0.1, above 0.05, since" in alarmed_tile
    assert "retrained v4 in review: 1 of 2 approvals" in alarmed_tile
    assert "No report on version 3 yet. The last one, on version 1" in alarmed_tile
    assert "0.810" not in alarmed_tile  # v1's roc_auc is not v3's
    drifting_tile = page[order[1] : order[2]]
    assert "drift in charges, contract, region and 1 more" in drifting_tile
    assert "0.810" in drifting_tile and "Now:</strong> v1 live since" in drifting_tile
    assert "Now:" not in page[order[2] : order[3]]  # calm: nothing changing
