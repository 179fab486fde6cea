"""The monitoring part of the demo: version 1 goes live through the usual sign-offs, then twelve weeks
of production traffic in which one region's prices rise in week nine. Weekly reports catch that
region's drift and falling performance, an alert opens and retraining puts a new version in review.

Tasks run in this process (eagerly) because the demo is loaded before any worker starts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from django.utils import timezone

from config.celery import app
from demo.churn import FEATURES, ID_COLUMN, TARGET, generate_customers, retrain
from monitoring import reports
from monitoring.models import Actual, AlertRule, MonitoringConfig, Report, RetrainingRecipe
from registry import services, workflow
from registry.models import RegisteredModel
from scoring import runtime
from scoring.batch import sources
from scoring.ids import uuid7
from scoring.models import Prediction

WEEKS = 12
PRICE_CHANGE_WEEK = 8  # zero-based: the ninth week
CUSTOMERS_PER_DAY = 600
REGION = "south"
PRICE_INCREASE = 0.3
LABEL_DELAY_DAYS = 14  # churn is known only weeks later: the latest days have no actuals yet
# The recipe as monitoring stores it ("demo.churn:retrain"), named after the function so that it follows it.
RETRAINING_RECIPE = f"{retrain.__module__}:{retrain.__name__}"


@contextmanager
def _eager_tasks() -> Iterator[None]:
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = previous


def play(*, model: RegisteredModel, users: dict[str, Any], say: Callable[[str], None]) -> None:
    with _eager_tasks():
        version = model.versions.get(number=1)
        if version.requires_trust and not version.is_trusted:
            services.version_accept_untrusted_types(
                actor=users["rita"], version=version, reason="Demo: scikit-learn types only"
            )
        workflow.version_transition(actor=users["ada"], version=version, action="submit")
        workflow.version_transition(actor=users["rita"], version=version, action="approve", comment="Looks sound.")
        workflow.version_transition(actor=users["ravi"], version=version, action="approve", comment="Agreed.")
        workflow.version_transition(actor=users["ravi"], version=version, action="go_live")
        say(f"  {model.name} v1 is in production (approved by rita and ravi, checks passed)")

        start = (timezone.now() - timedelta(weeks=WEEKS)).replace(hour=0, minute=0, second=0, microsecond=0)
        recent = _traffic(model, start)
        say(f"  {WEEKS} weeks of production traffic ({WEEKS * 7 * CUSTOMERS_PER_DAY:,} predictions)")

        # Under the batch input folder, the only place a recipe may read training files from.
        data_path = Path("demo") / "churn-recent-customers.parquet"
        (sources.batch_input_dir() / data_path).parent.mkdir(parents=True, exist_ok=True)
        recent.to_parquet(sources.batch_input_dir() / data_path, index=False)
        RetrainingRecipe.objects.create(
            model=model, callable_path=RETRAINING_RECIPE, data_path=str(data_path), created_by=users["ada"]
        )
        MonitoringConfig.objects.update_or_create(
            model=model,
            defaults={
                "slice_columns": ["region", "contract"],
                "sensitive_columns": ["senior_citizen"],
                "min_slice_rows": 200,
                "window_days": 7,
            },
        )
        AlertRule.objects.create(
            model=model,
            name=f"Drift in the {REGION} region",
            metric=AlertRule.Metric.DRIFT_SHARE,
            slice=f"region={REGION}",
            comparison=AlertRule.Comparison.ABOVE,
            threshold=0.05,  # any drifted feature in the region
            retrain=True,
            created_by=users["ada"],
        )
        AlertRule.objects.create(
            model=model,
            name="AUROC below registration",
            metric=AlertRule.Metric.PERFORMANCE,
            parameter="roc_auc",
            comparison=AlertRule.Comparison.BELOW,
            threshold=0.8,
            created_by=users["ada"],
        )
        for week in range(WEEKS):
            report = Report.objects.create(
                model=model,
                window_start=start + timedelta(weeks=week),
                window_end=start + timedelta(weeks=week + 1),
                requested_by=users["maya"],
            )
            reports.compute(report_id=report.pk)
        say(f"  {WEEKS} weekly reports; the {REGION} region drifts from week {PRICE_CHANGE_WEEK + 1}")
        latest = model.versions.order_by("-number").first()
        if latest is not None and latest.number > 2:
            say(f"  an alert opened and retraining registered v{latest.number}, waiting for review")


def _day(model_version: Any, day: int, at: Any) -> tuple[pd.DataFrame, list[Prediction]]:
    """One day of customers, scored by version 1; after the price change, one region pays more."""
    customers = generate_customers(CUSTOMERS_PER_DAY, seed=1000 + day, start_id=1 + day * CUSTOMERS_PER_DAY)
    if day >= PRICE_CHANGE_WEEK * 7:
        raised = generate_customers(
            CUSTOMERS_PER_DAY, seed=1000 + day, start_id=1 + day * CUSTOMERS_PER_DAY, price_increase=PRICE_INCREASE
        )
        in_region = (customers["region"] == REGION).to_numpy()
        customers.loc[in_region] = raised.loc[in_region]
    loaded = runtime.model_cache.loaded_version(model_version.pk)
    inputs = customers[FEATURES]
    labels = np.asarray(loaded.predictor.predict(inputs))
    probabilities = np.asarray(loaded.predictor.predict_proba(inputs))
    seconds = np.sort(np.random.default_rng(day).integers(0, 86_400, len(customers)))
    rows = []
    for index, record in enumerate(json.loads(inputs.to_json(orient="records"))):
        made_at = at + timedelta(seconds=int(seconds[index]))
        rows.append(
            Prediction(
                id=uuid7(made_at),  # as the scoring API does: the id tells the hour it is archived under
                at=made_at,
                model_id=model_version.model_id,
                version=model_version,
                entity_id=str(customers[ID_COLUMN].iloc[index]),
                input=record,
                input_sha256=hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest(),
                output=labels[index].item(),
                probabilities=probabilities[index].tolist(),
                latency_ms=1.0,
            )
        )
    return customers, rows


def _traffic(model: RegisteredModel, start: Any) -> pd.DataFrame:
    """Predictions for every day, actuals for those old enough; the last four weeks, labelled, returned."""
    version = model.versions.get(number=1)
    now = timezone.now()
    labelled = []
    for day in range(WEEKS * 7):
        at = start + timedelta(days=day)
        customers, predictions = _day(version, day, at)
        Prediction.objects.bulk_create(predictions, batch_size=2000)
        if at + timedelta(days=LABEL_DELAY_DAYS) <= now:
            Actual.objects.bulk_create(
                (
                    Actual(
                        model=model,
                        prediction_id=prediction.id,
                        entity_id=prediction.entity_id,
                        value=int(label),
                        observed_at=prediction.at,
                    )
                    for prediction, label in zip(predictions, customers[TARGET], strict=True)
                ),
                batch_size=2000,
            )
            if day >= (WEEKS - 4) * 7:
                labelled.append(customers)
    return pd.concat(labelled, ignore_index=True)
