"""Predictions made by production versions: the real-time log, its counters, and batch runs."""

from __future__ import annotations

import enum

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.urls import reverse
from django.utils import timezone

from registry.models import Consumer, ModelVersion, RegisteredModel
from scoring.ids import uuid7

# Entity ids are the caller's keys (customer numbers and the like); longer ones are refused with a 400.
MAX_ENTITY_ID_LENGTH = 200


class ScoringPolicy(models.Model):
    """Per-model settings of the scoring endpoints (created with defaults on first use)."""

    class UnknownCategories(models.TextChoices):
        REJECT = "reject", "Reject the request"
        PASS = "pass", "Pass them to the model"

    class InputLogging(models.TextChoices):
        FULL = "full", "Keep the input"
        HASH = "hash", "Keep only its sha256"

    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="scoring_policy")
    unknown_categories = models.CharField(
        max_length=10, choices=UnknownCategories.choices, default=UnknownCategories.REJECT
    )
    input_logging = models.CharField(max_length=10, choices=InputLogging.choices, default=InputLogging.FULL)
    max_rows_per_request = models.PositiveIntegerField(default=10_000)

    def __str__(self) -> str:
        return f"Scoring policy of {self.model}"


class Prediction(models.Model):
    """One scored row, for audit: written in batches off the request path.

    On PostgreSQL the table is partitioned by UTC day on `at` (scoring/archive/partitions.py), and the
    database's primary key is (id, at), since a partitioned table's unique keys must hold its partition
    key. Django keeps `id` as the primary key: ids are UUIDs, unique by construction, not by an index.
    Migrations that touch `id`, `at` or the primary key must be written by hand there (the key's columns
    and the partition key cannot change in place).

    Its id is a UUIDv7 made from `at` (scoring/ids.py): once the row has left this table for the
    archive, the id alone says which hour's files hold it.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    consumer = models.ForeignKey(Consumer, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    entity_id = models.CharField(max_length=MAX_ENTITY_ID_LENGTH, blank=True, db_index=True)
    input = models.JSONField(null=True, blank=True)
    input_sha256 = models.CharField(max_length=64)
    output = models.JSONField()
    probabilities = models.JSONField(null=True, blank=True)
    latency_ms = models.FloatField()
    # The engine that computed the output: "onnx" (the verified compiled graph) or the artifact's format.
    engine = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["model", "at"])]

    def __str__(self) -> str:
        return f"{self.pk} ({self.version})"


class ScoringStats(models.Model):
    """Requests, errors and a latency histogram per version and period, flushed from memory per minute.

    The recorder writes minutes; `usage_rollup` (scoring/usage.py) merges minutes older than
    MF_USAGE_MINUTES_HOURS into hours and hours older than MF_USAGE_HOURS_DAYS into days, so a version
    keeps a bounded number of rows. Readers sum whatever rows start in their range: a period is counted
    in exactly one row, as a minute's row is deleted in the transaction that adds it to its hour.
    """

    class Granularity(models.TextChoices):
        MINUTE = "minute", "Minute"
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="scoring_stats")
    granularity = models.CharField(max_length=6, choices=Granularity.choices, default=Granularity.MINUTE)
    start = models.DateTimeField(help_text="Start of the period (UTC)")
    # Big integers: a day of a busy version passes 2^31 rows.
    requests = models.PositiveBigIntegerField(default=0)
    rows = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    # Counts per latency bucket upper bound in ms (see scoring.recorder.BUCKETS).
    latency_histogram = models.JSONField(default=list)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.UniqueConstraint(fields=["version", "granularity", "start"], name="one_stats_row_per_period")
        ]
        indexes = [models.Index(fields=["granularity", "start"], name="stats_by_period")]

    def __str__(self) -> str:
        return f"{self.version} {self.granularity} {self.start:%Y-%m-%d %H:%M}"


class BatchJob(models.Model):
    """What to score, with which version, and where the results go; runs now or on a schedule."""

    class InputKind(models.TextChoices):
        UPLOAD = "upload", "Uploaded file"
        PATH = "path", "File on the server"
        SQL = "sql", "SQL query"

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="batch_jobs")
    name = models.SlugField(max_length=100)
    pinned_version = models.ForeignKey(
        ModelVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: the production version at the time of each run",
    )
    input_kind = models.CharField(max_length=10, choices=InputKind.choices)
    input_file = models.FileField(upload_to="batch-inputs/%Y/%m/", blank=True, max_length=500)
    input_path = models.CharField(max_length=500, blank=True, help_text="CSV or Parquet under MF_BATCH_INPUT_DIR")
    sql_connection = models.CharField(max_length=100, blank=True, help_text="A name from MF_SCORING_DATABASES")
    sql_query = models.TextField(blank=True)
    entity_column = models.CharField(max_length=200)
    write_parquet = models.BooleanField(default=False)
    chunk_rows = models.PositiveIntegerField(default=50_000)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="unique_batch_job_name")]

    def __str__(self) -> str:
        return f"{self.model.name}/{self.name}"

    def get_absolute_url(self) -> str:
        return reverse("scoring:job-detail", args=[self.model.name, self.name])


class BatchRun(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        # Values, not the names above: in the class body those are still (value, label) pairs.
        ACTIVE = enum.nonmember(frozenset({"pending", "running"}))
        TERMINAL = enum.nonmember(frozenset({"succeeded", "failed"}))  # a failed run may still resume

    job = models.ForeignKey(BatchJob, on_delete=models.PROTECT, related_name="runs")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    trigger = models.CharField(max_length=20, default="manual", help_text="manual, schedule or resume")
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The input as read at the start, so every chunk (and a resume) scores the same rows.
    snapshot = models.FileField(upload_to="batch-snapshots/%Y/%m/", blank=True, max_length=500)
    rows_total = models.PositiveBigIntegerField(default=0)
    rows_scored = models.PositiveBigIntegerField(default=0)
    rows_rejected = models.PositiveBigIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    output_parquet = models.FileField(upload_to="batch-outputs/%Y/%m/", blank=True, max_length=500)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.job}"

    @property
    def progress(self) -> float:
        return self.chunks_done / self.chunks_total if self.chunks_total else 0.0

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        return ((self.finished_at or timezone.now()) - self.started_at).total_seconds()


class BatchChunk(models.Model):
    """A slice of a run's rows; done exactly once, in the same transaction as its scores."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(BatchRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_row = models.PositiveBigIntegerField()
    last_row = models.PositiveBigIntegerField(help_text="Exclusive")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    rows_scored = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="unique_chunk_index")]

    def __str__(self) -> str:
        return f"Chunk {self.index} of run {self.run_id}"


class BatchScore(models.Model):
    """The operational table: one prediction per entity and run, read back by entity id."""

    # Batch runs insert millions of rows and every index and database check is paid per row: with an id,
    # the unique (run, entity), a lookup index, a version index and a deferred run foreign key, PostgreSQL
    # spent 17.5 µs per row; with (run, entity) as the only key, 4.5 µs (benchmarks/README.md).
    # The run, model and version keys are checked by Django (CASCADE and PROTECT), not per row at commit:
    # scores are written only in the transaction that claims one of the run's chunks.
    pk = models.CompositePrimaryKey("run", "entity_id")
    run = models.ForeignKey(
        BatchRun, on_delete=models.CASCADE, related_name="scores", db_index=False, db_constraint=False
    )
    model = models.ForeignKey(
        RegisteredModel, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    entity_id = models.CharField(max_length=MAX_ENTITY_ID_LENGTH)
    prediction = models.JSONField()
    probability = models.FloatField(null=True, blank=True, help_text="Of the positive class, for binary classifiers")
    # The database's clock (the chunk's transaction time) when COPY leaves it out: parsing a timestamp
    # per row was a third of PostgreSQL's work.
    scored_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return f"{self.entity_id}: {self.prediction}"


class BatchReject(models.Model):
    run = models.ForeignKey(BatchRun, on_delete=models.CASCADE, related_name="rejects")
    row_number = models.PositiveBigIntegerField()
    entity_id = models.CharField(max_length=MAX_ENTITY_ID_LENGTH, blank=True)
    reason = models.TextField()

    class Meta:
        ordering = ["run", "row_number"]
        constraints = [models.UniqueConstraint(fields=["run", "row_number"], name="one_reject_per_row")]

    def __str__(self) -> str:
        return f"Row {self.row_number} of run {self.run_id}: {self.reason}"


class SqlRun(models.Model):
    """A model used as a SQL function (DuckDB, Spark) by the Python client, outside this server: who
    registered the function, on which version, and what it scored, as the client reports it.

    Opened when the function is registered; the client adds its counts at least every minute, and a sample
    of its inputs and outputs goes to the prediction log like any other, for monitoring."""

    class Engine(models.TextChoices):
        DUCKDB = "duckdb", "DuckDB"
        SPARK = "spark", "Spark"

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="sql_runs")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="sql_runs")
    engine = models.CharField(max_length=10, choices=Engine.choices)
    function_name = models.CharField(max_length=100)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    started_at = models.DateTimeField(default=timezone.now)
    last_reported_at = models.DateTimeField(null=True, blank=True)
    rows_scored = models.PositiveBigIntegerField(default=0)
    rows_rejected = models.PositiveBigIntegerField(default=0)
    seconds = models.FloatField(default=0)
    rows_logged = models.PositiveBigIntegerField(default=0)
    # Set when a report found the version may no longer score: the client stops and says why.
    refused = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.function_name} ({self.get_engine_display()}) on {self.version}"


class ArchivedHour(models.Model):
    """One model's predictions (or actuals) of one hour, written to the archive: the manifest readers use.

    An hour is listed only once its files are written, and its hot rows are removed only once listed, so
    a compaction killed at any point is finished by the next one (scoring/archive/compaction.py).
    """

    class Kind(models.TextChoices):
        PREDICTIONS = "predictions", "Predictions"
        ACTUALS = "actuals", "Actuals"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    hour = models.DateTimeField(help_text="Start of the hour (UTC)")
    rows = models.PositiveBigIntegerField(default=0)
    bytes = models.PositiveBigIntegerField(default=0)
    # [{"path": relative path, "version": number or null, "rows": n, "bytes": n}]
    files = models.JSONField(default=list)
    archived_at = models.DateTimeField(default=timezone.now)
    # When the hour's hot rows were deleted: from then on the files are the only copy, so the hour is never
    # archived again from the hot table (that would overwrite them with whatever arrived since).
    pruned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["model", "kind", "hour"]
        constraints = [models.UniqueConstraint(fields=["model", "kind", "hour"], name="one_archive_entry_per_hour")]
        indexes = [models.Index(fields=["kind", "hour"])]

    def __str__(self) -> str:
        return f"{self.kind} of {self.model_id} at {self.hour:%Y-%m-%d %H}:00"


class ArchiveState(models.Model):
    """Per kind of archived rows: who is compacting now, and since when the archive location is failing.

    `running_since` is a lease claimed by compare-and-set, so that a second run (beat firing while a long
    catch-up is still going) skips instead of writing the same hours; a lease older than the task's time
    limit was left by a killed worker and may be taken over. `failing_since` is set once per outage, so
    admins are told once, not every run.
    """

    kind = models.CharField(max_length=12, choices=ArchivedHour.Kind.choices, unique=True)
    running_since = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"Archiving of {self.kind}"
