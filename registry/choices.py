import enum

from django.db import models


class ModelTask(models.TextChoices):
    CLASSIFICATION = "classification", "Classification"
    REGRESSION = "regression", "Regression"


class ArtifactFormat(models.TextChoices):
    SKOPS = "skops", "skops"
    ONNX = "onnx", "ONNX"
    PICKLE = "pickle", "joblib / pickle"
    MLFLOW = "mlflow", "MLflow model directory"


class SchemaSource(models.TextChoices):
    """Where a version's input schema came from, shown to the reviewer beside it."""

    DECLARED = "declared", "Declared at registration"
    MLFLOW_SIGNATURE = "mlflow_signature", "MLflow signature"
    INPUT_EXAMPLE = "input_example", "Inferred from the MLflow input example"
    REFERENCE_DATA = "reference_data", "Inferred from the reference data"
    GOLDEN_SET = "golden_set", "Inferred from the golden set"


class VersionStatus(models.TextChoices):
    """Lifecycle of a version; the transitions between them are governed by the review workflow."""

    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    CHANGES_REQUESTED = "changes_requested", "Changes requested"
    APPROVED = "approved", "Approved"
    CHECKS_PASSED = "checks_passed", "Checks passed"
    CHECKS_FAILED = "checks_failed", "Checks failed"
    PRODUCTION = "production", "Production"
    RETIRED = "retired", "Retired"
    REJECTED = "rejected", "Rejected"
    DEPRECATED = "deprecated", "Do not use"

    # Groups of statuses, by value: inside the class body a member is still its (value, label) pair.
    # Passed review, so may score (a pinned request too); "do not use" is not among them.
    SERVABLE = enum.nonmember(frozenset({"approved", "checks_passed", "production", "retired"}))
    # Not decided yet: a reviewer may still reject the version (or, once submitted, send it back).
    OPEN = enum.nonmember(frozenset({"draft", "in_review", "approved", "checks_passed", "checks_failed"}))
    # Set by the pre-deployment checks (a worker), not by people: a finished run moves a version between these.
    CHECK_SOURCES = enum.nonmember(frozenset({"approved", "checks_passed", "checks_failed"}))
    # Back with the author: not submitted yet, sent back by a reviewer, or failed its checks.
    WITH_AUTHOR = enum.nonmember(frozenset({"draft", "changes_requested", "checks_failed"}))


class FileKind(models.TextChoices):
    ARTIFACT = "artifact", "Model artifact"
    NOTEBOOK = "notebook", "Notebook"
    GOLDEN_SET = "golden_set", "Golden set"
    REFERENCE_DATA = "reference_data", "Reference data"
    TRAINING_DATA = "training_data", "Training data snapshot"
    ONNX = "onnx", "ONNX export"
    DOCUMENT = "document", "Document"


class AuditAction(models.TextChoices):
    """What an audit row records. Logic that reads the trail back (the production history, the quorum at
    submission) filters on these members, never on text."""

    MODEL_CREATED = "model.created", "Model created"
    MODEL_UPDATED = "model.updated", "Model updated"
    MODEL_PRODUCTION_CHANGED = "model.production_changed", "Production version changed"
    VERSION_REGISTERED = "version.registered", "Version registered"
    VERSION_TRUST_ACCEPTED = "version.trust_accepted", "Untrusted types accepted"
    VERSION_COMPILED = "version.compiled", "Version compiled"
    VERSION_SUBMIT = "version.submit", "Submitted for review"
    VERSION_APPROVE = "version.approve", "Approved"
    VERSION_REQUEST_CHANGES = "version.request_changes", "Changes requested"
    VERSION_REJECT = "version.reject", "Rejected"
    VERSION_GO_LIVE = "version.go_live", "Put in production"
    VERSION_ROLLBACK = "version.rollback", "Rolled back to"
    VERSION_DEPRECATE = "version.deprecate", "Marked do not use"
    VERSION_CHECKS_PASSED = "version.checks_passed", "Checks passed"
    VERSION_CHECKS_FAILED = "version.checks_failed", "Checks failed"
    VERSION_RETIRED = "version.retired", "Retired (replaced in production)"
    CHECKS_REQUESTED = "checks.requested", "Checks requested"
    CHECKS_COMPLETED = "checks.completed", "Checks completed"
    COMMENT_CREATED = "comment.created", "Comment written"
    CONSUMER_CREATED = "consumer.created", "Consumer created"
    CONSUMER_UPDATED = "consumer.updated", "Consumer updated"
    CONSUMER_TOKEN_ROTATED = "consumer.token_rotated", "Consumer token rotated"
    CONSUMER_TOKEN_REVOKED = "consumer.token_revoked", "Consumer token revoked"
    CONSUMER_TOKEN_EXPIRY_CHANGED = "consumer.token_expiry_changed", "Consumer token expiry changed"
    BATCH_JOB_CREATED = "batch_job.created", "Batch job created"
    BATCH_JOB_SCHEDULED = "batch_job.scheduled", "Batch job scheduled"
    BATCH_JOB_UNSCHEDULED = "batch_job.unscheduled", "Batch job unscheduled"
    BATCH_RUN_REQUESTED = "batch_run.requested", "Batch run requested"
    BATCH_RUN_RESUMED = "batch_run.resumed", "Batch run resumed"
    BATCH_RUN_SUCCEEDED = "batch_run.succeeded", "Batch run succeeded"
    BATCH_RUN_FAILED = "batch_run.failed", "Batch run failed"
    MONITORING_CONFIGURED = "monitoring.configured", "Monitoring configured"
    MONITORING_SCHEDULED = "monitoring.scheduled", "Reports scheduled"
    MONITORING_UNSCHEDULED = "monitoring.unscheduled", "Reports unscheduled"
    ALERT_RULE_CREATED = "alert_rule.created", "Alert rule created"
    RETRAINING_RECIPE_SAVED = "retraining.recipe_saved", "Retraining recipe saved"
    RETRAINING_REQUESTED = "retraining.requested", "Retraining requested"
    RETRAINING_SCHEDULED = "retraining.scheduled", "Retraining scheduled"
    RETRAINING_UNSCHEDULED = "retraining.unscheduled", "Retraining unscheduled"
