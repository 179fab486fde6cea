"""The archive on S3-compatible object storage (MF_ARCHIVE_URL=s3://…): compaction writes the files there
through pyarrow's own S3 client, a report reads its window from them, and an archived prediction is
shown and reproduced from them. The server is moto's S3 server on localhost, spoken to over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from django.utils import timezone
from moto.server import ThreadedMotoServer

from monitoring import archiving, reports
from monitoring.models import Report
from registry.models import Consumer, ModelVersion
from scoring.archive import compaction, store
from scoring.models import ArchivedHour, Prediction
from tests.scoring.archive_support import client_for, later, score

BUCKET = "mf-archive"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture
def on_s3(s3_endpoint: str, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """MF_ARCHIVE_URL on a fresh bucket, credentials from the environment as for any AWS client."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = boto3.client(
        "s3", endpoint_url=f"http://{s3_endpoint}", region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key="test",
    )  # fmt: skip
    bucket = f"{BUCKET}-{timezone.now():%H%M%S%f}"
    client.create_bucket(Bucket=bucket)
    settings.MF_ARCHIVE_URL = f"s3://{bucket}/archive?endpoint_override={s3_endpoint}&scheme=http"
    return client, bucket


def test_the_archive_is_written_to_object_storage_and_read_back(
    on_s3: Any, production: ModelVersion, consumer_token: tuple[Consumer, str], author: Any
) -> None:
    client, bucket = on_s3
    ids = score(consumer_token[1], 40)
    app = client_for(consumer_token[1])
    labelled = app.post(
        "/api/models/churn/actuals/",
        {"rows": [{"prediction_id": pid, "actual": index % 2} for index, pid in enumerate(ids)]},
        format="json",
    )
    assert labelled.status_code in (200, 201), labelled.content

    summary = compaction.archive_run(now=later(days=15))
    archiving.archive_actuals_run(now=later(days=15))

    assert summary.pruned_rows == 40 and not Prediction.objects.exists()
    keys = sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert any(key.startswith("archive/predictions/model=") for key in keys), keys
    assert any(key.startswith("archive/actuals/model=") for key in keys), keys
    assert not any(".tmp" in key for key in keys)  # written under a temporary name, then moved
    assert store.filesystem()[1] == f"{bucket}/archive"
    assert sum(entry.rows for entry in ArchivedHour.objects.filter(kind="predictions")) == 40

    # A report reads its window from the bucket (pyarrow's dataset, not DuckDB's local reader).
    now = timezone.now()
    report = Report.objects.create(
        model=production.model, window_start=now - timedelta(hours=2), window_end=now + timedelta(hours=1),
        requested_by=author,
    )  # fmt: skip
    done = reports.compute(report_id=report.pk)
    assert done is not None and done.status == Report.Status.DONE, done and done.error
    assert (done.rows_current, done.rows_with_actuals, done.results["unreadable"]) == (40, 40, [])

    # A prediction whose hot row is gone is shown and reproduced from its file in the bucket.
    shown = app.get(f"/api/predictions/{ids[5]}/")
    assert shown.status_code == 200, shown.content
    reproduced = app.post(f"/api/predictions/{ids[5]}/reproduce/")
    assert reproduced.status_code == 200 and reproduced.json()["identical"] is True, reproduced.content
