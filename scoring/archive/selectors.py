"""Reads of the archive for single predictions: one whose hot row is gone, found from its id alone."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pyarrow.compute as pc

from registry.models import ModelVersion
from registry.schema import parse_schema
from scoring.archive import format, store
from scoring.archive.lifecycle import HOUR, hour_of
from scoring.ids import uuid7_time
from scoring.models import ArchivedHour, Prediction

logger = logging.getLogger(__name__)


def archived_prediction(prediction_id: uuid.UUID) -> Prediction | None:
    """The archived prediction with this id, rebuilt as an unsaved Prediction with its version (enough to
    show it and to reproduce it); None if the archive does not hold it.

    Only UUIDv7 ids (scoring/ids.py) can be found: their time names the hour whose files to read. An older
    uuid4 id carries no time, and looking for it would mean reading every file of the archive.
    """
    made_at = uuid7_time(prediction_id)
    if made_at is None:
        return None
    # The scoring API makes the id from `at`, so its hour is the row's. Ids made by the model's default are
    # made a moment before `at`, which may fall in the next hour.
    hour = hour_of(made_at)
    entries = ArchivedHour.objects.filter(kind=ArchivedHour.Kind.PREDICTIONS, hour__in=[hour, hour + HOUR])
    wanted = pc.field(format.ID) == str(prediction_id)
    for entry in entries.order_by("hour", "model_id"):
        for file in entry.files:
            try:
                # Files are sorted by time, so the row groups' id statistics skip all but one.
                found = store.dataset([file["path"]]).to_table(filter=wanted)
            except OSError:
                logger.exception("Archive file %s of %s could not be read", file["path"], entry)
                continue
            if found.num_rows:
                return _rebuilt(found.slice(0, 1).to_pylist()[0])
    return None


def archived_prediction_ids(*, model_id: int, ids: set[uuid.UUID], consumer_id: int | None = None) -> set[uuid.UUID]:
    """Which of `ids` the archive holds as predictions of the model (made for the consumer, when given).

    Ids are grouped by the hour their UUIDv7 names, so only those hours' files are read, and only their id
    and consumer columns; uuid4 ids carry no time and are never found.
    """
    by_hour: dict[Any, set[str]] = {}
    for value in ids:
        made_at = uuid7_time(value)
        if made_at is not None:
            hour = hour_of(made_at)
            for candidate in (hour, hour + HOUR):  # as in archived_prediction
                by_hour.setdefault(candidate, set()).add(str(value))
    found: set[uuid.UUID] = set()
    entries = ArchivedHour.objects.filter(model_id=model_id, kind=ArchivedHour.Kind.PREDICTIONS, hour__in=list(by_hour))
    for entry in entries:
        wanted = pc.field(format.ID).isin(sorted(by_hour[entry.hour]))
        if consumer_id is not None:
            wanted &= pc.field(format.CONSUMER_ID) == consumer_id
        for file in entry.files:
            try:
                table = store.dataset([file["path"]]).to_table(columns=[format.ID], filter=wanted)
            except OSError:
                logger.exception("Archive file %s of %s could not be read", file["path"], entry)
                continue
            found.update(uuid.UUID(value) for value in table.column(format.ID).to_pylist())
    return found


def _rebuilt(row: dict[str, Any]) -> Prediction | None:
    # Archived predictions no longer protect their version: a deleted version's predictions are gone too.
    version = ModelVersion.objects.select_related("model").filter(pk=row[format.VERSION_ID]).first()
    if version is None:
        return None
    values = format.logged_prediction(row, parse_schema(version.input_schema))
    prediction = Prediction(**{**values, "id": uuid.UUID(str(values["id"]))})
    prediction.model = version.model
    prediction.version = version
    return prediction
