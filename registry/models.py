from __future__ import annotations

import datetime
import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from registry.choices import ArtifactFormat, FileKind, ModelTask, SchemaSource, VersionStatus


class Tag(models.Model):
    name = models.SlugField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


HIGH_RISK_TAG = "high-risk"


class RegisteredModel(models.Model):
    """A model in the inventory: the stable identity that versions, consumers and reports hang on."""

    name = models.SlugField(max_length=100, unique=True, help_text="Unique slug, e.g. customer-churn")
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Markdown")
    task = models.CharField(max_length=20, choices=ModelTask.choices)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_models")
    tags = models.ManyToManyField(Tag, blank=True, related_name="models")
    business_context = models.TextField(blank=True)
    required_approvals = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="Distinct reviewer approvals a version needs; empty: 2 if tagged high-risk, else 1",
    )
    latency_budget_ms = models.FloatField(default=50.0, help_text="Budget for one single-row prediction")
    batch_latency_budget_ms = models.FloatField(default=2000.0, help_text="Budget for one 1,000-row prediction")
    score_tolerance = models.FloatField(
        default=1e-6, help_text="Largest difference allowed when reproducing golden scores"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("registry:model-detail", args=[self.name])

    @property
    def approvals_needed(self) -> int:
        if self.required_approvals:
            return self.required_approvals
        return 2 if any(tag.name == HIGH_RISK_TAG for tag in self.tags.all()) else 1


class ModelVersion(models.Model):
    """One registered, immutable version of a model: its artifact and everything attached.

    Only `status`, the trust decision and the reference profile change after registration; any
    other change is a new version.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=20, choices=VersionStatus.choices, default=VersionStatus.DRAFT)
    format = models.CharField(max_length=10, choices=ArtifactFormat.choices)
    framework = models.CharField(max_length=100, blank=True)
    # The class that predicts, read from the artifact without loading it (artifacts.ArtifactInspection).
    estimator = models.CharField(max_length=200, blank=True)
    environment = models.JSONField(
        default=dict, blank=True, help_text="Python and library versions captured at registration"
    )
    requirements = models.TextField(blank=True)
    input_schema = models.JSONField(default=list, blank=True)
    input_schema_source = models.CharField(max_length=20, choices=SchemaSource.choices, blank=True)
    output_schema = models.JSONField(default=list, blank=True)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    training_data_uri = models.CharField(max_length=500, blank=True)
    training_data_rows = models.PositiveBigIntegerField(null=True, blank=True)
    training_data_sha256 = models.CharField(max_length=64, blank=True)
    code_uri = models.CharField(max_length=500, blank=True)
    code_commit = models.CharField(max_length=64, blank=True)
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children")
    release_notes = models.TextField(blank=True, help_text="Markdown")
    untrusted_types = models.JSONField(
        default=list,
        blank=True,
        help_text="Types the artifact would load that are not known to be safe",
    )
    trust_accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    trust_accepted_at = models.DateTimeField(null=True, blank=True)
    reference_profile = models.JSONField(
        null=True, blank=True, help_text="Summary statistics of the reference data, computed by a worker"
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="authored_versions")
    created_at = models.DateTimeField(auto_now_add=True)
    # Each submission opens a new review round; approvals count within the current round only.
    review_round = models.PositiveIntegerField(default=0)
    status_changed_at = models.DateTimeField(default=timezone.now)
    deprecation_reason = models.TextField(blank=True)
    # What MLflow recorded about the model (from its MLmodel file) and, for a version imported from an
    # MLflow tracking server, the run and registry version it came from: {"mlmodel": {...}, "import": {...}}.
    mlflow = models.JSONField(default=dict, blank=True)
    # "<tracking URI>#<registered model>/<version>" of an imported version: one import per MLflow version.
    mlflow_source = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="unique_version_number"),
            models.UniqueConstraint(
                fields=["model", "mlflow_source"],
                condition=~Q(mlflow_source=""),
                name="one_version_per_mlflow_source",
            ),
            models.UniqueConstraint(
                fields=["model"],
                condition=Q(status=VersionStatus.PRODUCTION),
                name="one_production_version_per_model",
            ),
        ]
        permissions = [
            ("upload_pickle", "May upload joblib/pickle artifacts"),
            ("accept_untrusted_types", "May accept the untrusted types of an artifact"),
            ("review_version", "May sign off model versions"),
            ("go_live_version", "May sign the go-live of a model version"),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"

    def get_absolute_url(self) -> str:
        return reverse("registry:version-detail", args=[self.model.name, self.number])

    @property
    def requires_trust(self) -> bool:
        """Whether a reviewer must accept the artifact's types before anything loads it."""
        return self.format == ArtifactFormat.PICKLE or bool(self.untrusted_types)

    @property
    def is_trusted(self) -> bool:
        return not self.requires_trust or self.trust_accepted_at is not None


def version_file_path(instance: VersionFile, filename: str) -> str:
    # A random folder per file: names never collide and a path reveals nothing guessable.
    version = instance.version
    return f"models/{version.model.name}/v{version.number}/{uuid.uuid4().hex}/{filename}"


class VersionFile(models.Model):
    """A file registered with a version (artifact, notebook, data, documents), with its sha256."""

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="files")
    kind = models.CharField(max_length=20, choices=FileKind.choices)
    file = models.FileField(upload_to=version_file_path, max_length=500)
    filename = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    rows = models.PositiveIntegerField(null=True, blank=True, help_text="For tables")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["version", "kind", "filename"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "kind"],
                condition=~Q(kind=FileKind.DOCUMENT),
                name="one_file_per_single_kind",
            ),
            models.UniqueConstraint(fields=["version", "filename"], name="unique_file_name"),
        ]

    def __str__(self) -> str:
        return f"{self.version} {self.kind} {self.filename}"

    def get_absolute_url(self) -> str:
        return reverse(
            "registry:file-download",
            args=[self.version.model.name, self.version.number, self.pk],
        )


def compiled_file_path(instance: Compilation, filename: str) -> str:
    version = instance.version
    return f"models/{version.model.name}/v{version.number}/compiled/{uuid.uuid4().hex}/{filename}"


class Compilation(models.Model):
    """The version's model as an ONNX graph for fast serving: compiled by a worker at registration, or the
    author's attached export. It serves only once the "Compiled model agrees" check has passed on it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Compiling"
        COMPILED = "compiled", "Compiled"
        UNSUPPORTED = "unsupported", "Cannot be compiled"
        FAILED = "failed", "Compilation failed"
        DISABLED = "disabled", "Compilation switched off"

    class Source(models.TextChoices):
        COMPILED = "compiled", "Compiled by Model Factory"
        ATTACHED = "attached", "ONNX export attached by the author"

    version = models.OneToOneField(ModelVersion, on_delete=models.PROTECT, related_name="compilation")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.COMPILED)
    file = models.FileField(upload_to=compiled_file_path, blank=True, max_length=500)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.PositiveBigIntegerField(null=True, blank=True)
    # How it was made: converter and runtime versions, opsets, precision.
    converter = models.JSONField(default=dict, blank=True)
    # Why it cannot serve (an estimator the converter does not support, or its error), for the version page.
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Compilation of {self.version}: {self.status}"


class AppendOnlyQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise PermissionError("Audit events are append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit events are append-only")


class AuditEvent(models.Model):
    """One row per change, never updated or deleted.

    The app refuses updates and deletes here; on PostgreSQL a trigger refuses them too, so a
    raw SQL statement cannot rewrite history either.
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=50, db_index=True)
    model = models.ForeignKey(
        RegisteredModel, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_events"
    )
    version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_events"
    )
    old = models.JSONField(null=True, blank=True)
    new = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    # The process that made the change when no person did it by hand ("retraining, triggered by alert #3"):
    # the actor is then whom it acted for.
    via = models.CharField(max_length=200, blank=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("Audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit events are append-only")


class SignOff(models.Model):
    """A reviewer's signature on exactly the bytes they reviewed."""

    class Kind(models.TextChoices):
        APPROVAL = "approval", "Approval"
        GO_LIVE = "go_live", "Go-live"
        ROLLBACK = "rollback", "Rollback"

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="signoffs")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    review_round = models.PositiveIntegerField()
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="signoffs")
    at = models.DateTimeField(default=timezone.now)
    comment = models.TextField(blank=True)
    evidence = models.JSONField(help_text="sha256 of the artifact and of each attachment, by file name")

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "kind", "review_round", "user"],
                condition=Q(kind="approval"),
                name="one_approval_per_reviewer_per_round",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.version} by {self.user}"


class Comment(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="comments")
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="replies")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField(help_text="Markdown")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Comment by {self.author} on {self.version}"


class CheckRun(models.Model):
    """One run of the pre-deployment checks of a version, with every check's result."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"
        ERROR = "error", "Could not run"

    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="check_runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # [{"name", "title", "status": passed|warning|failed|skipped, "required", "summary", "details"}]
    results = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    serving_environment = models.JSONField(default=dict, blank=True)
    # What the run judged (workflow.checks_inputs): an approval reuses the submission's run only while
    # these are still the version's.
    inputs = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        get_latest_by = "started_at"

    def __str__(self) -> str:
        return f"Checks of {self.version}: {self.status}"


def _utc(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat(timespec="seconds")


class Consumer(models.Model):
    """An application or batch job that uses a model's predictions and must hear about changes."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="consumers")
    name = models.SlugField(max_length=100)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    contact_email = models.EmailField(blank=True)
    webhook_url = models.URLField(blank=True, max_length=500)
    webhook_secret = models.CharField(max_length=64, blank=True, help_text="Signs webhook bodies (HMAC-SHA256)")
    pinned_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, null=True, blank=True, related_name="pinned_by"
    )
    rate_limit = models.CharField(
        max_length=20, blank=True, help_text="Prediction requests allowed, e.g. 50/s or 10000/hour; empty: the default"
    )
    token_prefix = models.CharField(max_length=12, blank=True)
    token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    # The token stops working at this time (null: it never expires; only tokens issued before expiry
    # existed, and the migration that added it gave those a date too).
    token_expires_at = models.DateTimeField(null=True, blank=True)
    # Set when the owner revokes the token; a rotation issues a new token and clears it.
    token_revoked_at = models.DateTimeField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="unique_consumer_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.model})"

    def token_refusal(self, now: datetime.datetime | None = None) -> str:
        """Why this consumer's token may not be used now, or "" when it may."""
        now = now or timezone.now()
        if not self.active:
            return f"Consumer {self.name!r} is deactivated."
        if self.token_revoked_at is not None:
            return f"This consumer token was revoked at {_utc(self.token_revoked_at)}; ask its owner for a new one."
        if self.token_expires_at is not None and self.token_expires_at <= now:
            return f"This consumer token expired at {_utc(self.token_expires_at)}; ask its owner for a new one."
        return ""


class WebhookDelivery(models.Model):
    """One event sent to one consumer's webhook, with every attempt and its outcome."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    consumer = models.ForeignKey(Consumer, on_delete=models.PROTECT, related_name="deliveries")
    event = models.CharField(max_length=50)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # [{"at", "status_code", "error", "duration_ms"}]
    attempts = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} to {self.consumer}: {self.status}"


class Notification(models.Model):
    """An in-app message for one user."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    message = models.CharField(max_length=500)
    url = models.CharField(max_length=500, blank=True)
    # What the notification asks of its reader ("review:<version id>"): once that is done, by anyone, it
    # is closed (marked read), so that nobody is asked for what no longer waits.
    topic = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"]), models.Index(fields=["topic", "read_at"])]

    def __str__(self) -> str:
        return self.message
