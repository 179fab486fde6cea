"""Monitoring: actuals as they arrive, stored reports per window, alert rules and their alerts."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from registry.models import ModelVersion, RegisteredModel
from scoring.models import MAX_ENTITY_ID_LENGTH


class Actual(models.Model):
    """The true outcome of a prediction (by its id) or of an entity, posted when it is known."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="actuals")
    # A plain id, not a foreign key: predictions leave the hot table once archived (and PostgreSQL's day
    # partitions key it by (id, at), which no foreign key can reference). Ingestion checks that it exists.
    prediction_id = models.UUIDField(null=True, blank=True, db_index=True)
    entity_id = models.CharField(max_length=MAX_ENTITY_ID_LENGTH, blank=True)
    value = models.JSONField()
    observed_at = models.DateTimeField(default=timezone.now)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model", "prediction_id"],
                condition=Q(prediction_id__isnull=False),
                name="one_actual_per_prediction",
            ),
            models.UniqueConstraint(
                fields=["model", "entity_id"], condition=~Q(entity_id=""), name="one_actual_per_entity"
            ),
            models.CheckConstraint(
                condition=Q(prediction_id__isnull=False) | ~Q(entity_id=""), name="actual_has_a_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model}: {self.prediction_id or self.entity_id} = {self.value}"


class MonitoringConfig(models.Model):
    """How a model is monitored: baseline, slices, fairness, schedule."""

    class Baseline(models.TextChoices):
        REFERENCE = "reference", "The version's reference data"
        TRAILING = "trailing", "A trailing window of production inputs"

    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="monitoring")
    baseline = models.CharField(max_length=10, choices=Baseline.choices, default=Baseline.REFERENCE)
    trailing_days = models.PositiveIntegerField(default=28, help_text="For a trailing baseline")
    slice_columns = models.JSONField(default=list, blank=True, help_text='Input columns, e.g. ["region"]')
    slice_expressions = models.JSONField(
        default=dict, blank=True, help_text='Named pandas expressions, e.g. {"young": "tenure_months < 12"}'
    )
    sensitive_columns = models.JSONField(default=list, blank=True, help_text="Slice columns checked for fairness")
    min_slice_rows = models.PositiveIntegerField(default=100)
    fdr_correction = models.BooleanField(default=True, help_text="Benjamini-Hochberg over all p-value tests")
    fairness_threshold = models.FloatField(default=0.1, help_text="Largest allowed gap between slices")
    window_days = models.PositiveIntegerField(default=1, help_text="Window of a scheduled report")
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    watchers = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="watched_models", help_text="Told of alerts, with the owner"
    )

    def __str__(self) -> str:
        return f"Monitoring of {self.model}"


class Report(models.Model):
    """One computed window: results are stored so that pages never recompute on load."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="reports")
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    baseline = models.CharField(max_length=200, blank=True)
    rows_current = models.PositiveBigIntegerField(default=0)
    rows_reference = models.PositiveBigIntegerField(default=0)
    rows_with_actuals = models.PositiveBigIntegerField(default=0)
    # Summary figures, denormalised for dashboards: read without opening `results`.
    drift_share = models.FloatField(null=True, blank=True)
    dataset_drift = models.BooleanField(null=True, blank=True)
    performance = models.JSONField(default=dict, blank=True)
    results = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-window_end", "-id"]
        indexes = [models.Index(fields=["model", "-window_end"], name="report_latest")]

    def __str__(self) -> str:
        return f"{self.model} {self.window_start:%Y-%m-%d}..{self.window_end:%Y-%m-%d}"

    @property
    def is_done(self) -> bool:
        """Computed and stored: the only reports the pages draw."""
        return self.status == self.Status.DONE


def evidently_file_path(instance: EvidentlyReport, filename: str) -> str:
    report = instance.report
    return f"monitoring/{report.model.name}/reports/{report.pk}/{uuid.uuid4().hex}/{filename}"


class EvidentlyReport(models.Model):
    """Evidently's own HTML report of a stored report's window, built once by a worker from a bounded
    sample of the window and kept as a file: pages show the file and never compute it."""

    class Status(models.TextChoices):
        PREPARING = "preparing", "Being prepared"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    report = models.OneToOneField(Report, on_delete=models.PROTECT, related_name="evidently")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PREPARING)
    file = models.FileField(upload_to=evidently_file_path, blank=True, max_length=500)
    # What Evidently saw: a uniform random sample of `sample_rows` of the window's `total_rows`
    # predictions, against `reference_sample_rows` rows of the baseline.
    sample_rows = models.PositiveIntegerField(null=True, blank=True)
    total_rows = models.PositiveBigIntegerField(null=True, blank=True)
    reference_sample_rows = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    requested_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Evidently's report of {self.report}: {self.status}"

    @property
    def is_sampled(self) -> bool:
        """Evidently saw fewer rows than the window holds."""
        return self.sample_rows is not None and self.total_rows is not None and self.sample_rows < self.total_rows


class AlertRule(models.Model):
    class Metric(models.TextChoices):
        PERFORMANCE = "performance", "Performance metric"
        DRIFT_SHARE = "drift_share", "Share of drifted features"
        FEATURE_DRIFT = "feature_drift", "A feature's drift statistic"
        SLICE_PERFORMANCE = "slice_performance", "A slice's performance metric"
        FAIRNESS_GAP = "fairness_gap", "Fairness gap"
        MISSING_SHARE = "missing_share", "Share of missing values"
        PREDICTION_VOLUME = "prediction_volume", "Prediction volume"

    class Comparison(models.TextChoices):
        ABOVE = ">", "above"
        BELOW = "<", "below"

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="alert_rules")
    name = models.CharField(max_length=100)
    metric = models.CharField(max_length=20, choices=Metric.choices)
    # e.g. "roc_auc" for performance, a feature name, a fairness measure ("positive_rate")
    parameter = models.CharField(max_length=200, blank=True)
    slice = models.CharField(max_length=200, blank=True, help_text='"column=value", for slice metrics')
    comparison = models.CharField(max_length=1, choices=Comparison.choices)
    threshold = models.FloatField()
    retrain = models.BooleanField(default=False, help_text="Run the retraining recipe when the alert opens")
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # The end of the newest window this rule has been judged on: a report over an older window (asked for
    # later, or finishing later) never opens or closes its alert.
    judged_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["model", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="unique_alert_rule_name")]

    def __str__(self) -> str:
        return f"{self.model}: {self.name}"


class Alert(models.Model):
    """Opened once when a rule's condition starts to hold; closed when it clears."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    rule = models.ForeignKey(AlertRule, on_delete=models.PROTECT, related_name="alerts")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    opened_by_report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="+")
    last_value = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(fields=["rule"], condition=Q(status="open"), name="one_open_alert_per_rule")
        ]

    def __str__(self) -> str:
        return f"{self.rule} ({self.status})"


class AlertEvent(models.Model):
    """A state change of an alert, with the value that caused it."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=10)  # opened, closed
    value = models.FloatField(null=True, blank=True)
    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.alert} {self.kind}"


class RetrainingRecipe(models.Model):
    """How to retrain a model: a callable in an installed module, and its training data."""

    model = models.OneToOneField(RegisteredModel, on_delete=models.CASCADE, related_name="retraining_recipe")
    callable_path = models.CharField(
        max_length=300, help_text='"package.module:function"; called with the training data frame'
    )
    data_path = models.CharField(max_length=500, blank=True, help_text="CSV or Parquet file of training data")
    data_query = models.TextField(blank=True, help_text="Or a SQL query on MF_SCORING_DATABASES' connection")
    data_connection = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"Retraining of {self.model}"


class RetrainingRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        REGISTERED = "registered", "Registered a version"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        ALERT = "alert", "An alert"
        SCHEDULE = "schedule", "The schedule"
        MANUAL = "manual", "Started by hand"

    recipe = models.ForeignKey(RetrainingRecipe, on_delete=models.PROTECT, related_name="runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.ALERT)
    alert = models.ForeignKey(Alert, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.recipe} at {self.started_at:%Y-%m-%d %H:%M}"


class SummaryBins(models.Model):
    """The bins a version's hourly summaries count feature values on, fixed once per version.

    Derived from the version's reference data (or, for a version without one, from the first hour
    summarised) and never changed, so that the counts of any hours add up: numerical features on quantile
    edges, categorical features on their most frequent values plus "other".
    """

    class Source(models.TextChoices):
        REFERENCE = "reference", "The version's reference data"
        TRAFFIC = "traffic", "The first hour of traffic summarised"

    version = models.OneToOneField(ModelVersion, on_delete=models.CASCADE, related_name="summary_bins")
    source = models.CharField(max_length=10, choices=Source.choices)
    # {feature: {"kind": "numerical", "edges": [...]} | {"kind": "categorical", "values": [...]}}
    features = models.JSONField(default=dict)
    # Every label the version has predicted in a summarised hour, so that trends add each one up in SQL.
    labels = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Summary bins of {self.version}"


class HourlySummary(models.Model):
    """One hour of a version's predictions, for all traffic (slice "") or one slice ("column=value").

    Every figure is a count or a sum, so the summaries of any set of hours merge by adding
    (monitoring/summary_selectors.py): dashboards and trends cost the number of hours, not of predictions.
    Written by monitoring/summaries.py once the hour is archived; summarising an hour again replaces it.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="+")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    slice = models.CharField(max_length=200, blank=True)
    hour = models.DateTimeField(help_text="Start of the hour (UTC)")
    rows = models.PositiveBigIntegerField(default=0)
    # Failed requests of the hour from the usage counters (they log no prediction); only for slice "".
    errors = models.PositiveBigIntegerField(null=True, blank=True)
    latency_sum_ms = models.FloatField(default=0.0)
    # Predictions per latency bucket of scoring.recorder.BUCKETS (the request's latency, per row).
    latency_histogram = models.JSONField(default=list)
    # Label coverage: predictions whose actual was known when the hour was summarised (by prediction id,
    # else entity id); summarising the hour again counts actuals that arrived since.
    rows_with_actuals = models.PositiveBigIntegerField(default=0)
    # Classifiers: {label: count}. Regressors: the sum and sum of squares of the predicted numbers.
    predictions = models.JSONField(default=dict)
    prediction_sum = models.FloatField(null=True, blank=True)
    prediction_sum_squares = models.FloatField(null=True, blank=True)
    prediction_count = models.PositiveBigIntegerField(default=0)  # predictions that were numbers
    score_sum = models.FloatField(null=True, blank=True)
    score_count = models.PositiveBigIntegerField(default=0)
    # {feature: {"counts": [...on the version's SummaryBins...], "missing": n}}; rows whose input was not
    # kept (only its hash) are in neither.
    features = models.JSONField(default=dict)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "slice", "hour"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version", "slice", "hour"], name="one_summary_per_slice_hour")
        ]
        indexes = [models.Index(fields=["model", "slice", "hour"], name="summary_by_slice_hour")]

    def __str__(self) -> str:
        return f"{self.version} {self.slice or 'all'} {self.hour:%Y-%m-%d %H}:00"
