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


class FileKind(models.TextChoices):
    ARTIFACT = "artifact", "Model artifact"
    NOTEBOOK = "notebook", "Notebook"
    GOLDEN_SET = "golden_set", "Golden set"
    REFERENCE_DATA = "reference_data", "Reference data"
    TRAINING_DATA = "training_data", "Training data snapshot"
    ONNX = "onnx", "ONNX export"
    DOCUMENT = "document", "Document"


# Kinds of which a version holds at most one file; documents may be many.
SINGLE_FILE_KINDS = frozenset(kind for kind in FileKind if kind != FileKind.DOCUMENT)
