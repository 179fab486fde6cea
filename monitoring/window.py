"""A model's production traffic in a time window, as one table: inputs, outputs and actuals.

Rows come from the real-time prediction log (where inputs were kept) and from batch runs (their
input snapshot joined with their scores). Actuals join by prediction id, else by entity id.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from django.db.models import Q

from monitoring.models import Actual
from registry.models import RegisteredModel
from scoring.batch.snapshots import read_snapshot
from scoring.models import BatchRun, BatchScore, Prediction

# Columns the window adds next to the model's inputs.
PREDICTION, SCORE, ACTUAL, AT, ENTITY, PREDICTION_ID, VERSION = (
    "__prediction",
    "__score",
    "__actual",
    "__at",
    "__entity_id",
    "__prediction_id",
    "__version",
)


def _positive_score(probabilities: object) -> float:
    if isinstance(probabilities, list) and len(probabilities) == 2:
        return float(probabilities[1])
    return np.nan


def realtime_rows(model: RegisteredModel, start: datetime, end: datetime) -> pd.DataFrame:
    rows = (
        Prediction.objects.filter(model=model, at__gte=start, at__lt=end, input__isnull=False)
        .values_list("id", "at", "entity_id", "input", "output", "probabilities", "version__number")
        .iterator(chunk_size=5000)
    )
    records = []
    for prediction_id, at, entity_id, inputs, output, probabilities, number in rows:
        records.append(
            {
                **(inputs or {}),
                PREDICTION: output,
                SCORE: _positive_score(probabilities),
                AT: at,
                ENTITY: entity_id or None,
                PREDICTION_ID: str(prediction_id),
                VERSION: number,
            }
        )
    return pd.DataFrame.from_records(records)


def batch_rows(model: RegisteredModel, start: datetime, end: datetime) -> pd.DataFrame:
    frames = []
    runs = BatchRun.objects.filter(
        job__model=model, status=BatchRun.Status.SUCCEEDED, finished_at__gte=start, finished_at__lt=end
    ).select_related("job", "version")
    for run in runs:
        if not run.snapshot:
            continue
        inputs = read_snapshot(run)
        entity_column = run.job.entity_column
        scores = pd.DataFrame.from_records(
            BatchScore.objects.filter(run=run).values("entity_id", "prediction", "probability", "scored_at")
        )
        if scores.empty:
            continue
        inputs[ENTITY] = inputs[entity_column].astype(str)
        joined = inputs.drop(columns=[entity_column]).merge(
            scores.rename(
                columns={"entity_id": ENTITY, "prediction": PREDICTION, "probability": SCORE, "scored_at": AT}
            ),
            on=ENTITY,
        )
        joined[PREDICTION_ID] = None
        joined[VERSION] = run.version.number if run.version else None
        frames.append(joined)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def with_actuals(model: RegisteredModel, frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame[ACTUAL] = None
    if frame.empty:
        return frame
    prediction_ids = list(frame[PREDICTION_ID].dropna().unique())
    entity_ids = list(frame[ENTITY].dropna().unique())
    actuals = Actual.objects.filter(model=model).filter(
        Q(prediction_id__in=prediction_ids) | Q(entity_id__in=entity_ids)
    )
    by_prediction, by_entity = {}, {}
    for prediction_id, entity_id, value in actuals.values_list("prediction_id", "entity_id", "value").iterator():
        if prediction_id is not None:
            by_prediction[str(prediction_id)] = value
        if entity_id:
            by_entity[entity_id] = value
    from_prediction = frame[PREDICTION_ID].map(by_prediction)
    from_entity = frame[ENTITY].map(by_entity)
    frame[ACTUAL] = from_prediction.where(from_prediction.notna(), from_entity)
    return frame


def production_window(model: RegisteredModel, start: datetime, end: datetime) -> pd.DataFrame:
    parts = [part for part in (realtime_rows(model, start, end), batch_rows(model, start, end)) if not part.empty]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return with_actuals(model, frame)
