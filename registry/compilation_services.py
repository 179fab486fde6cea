"""Writes of a version's compiled ONNX engine: created at registration, compiled once by a worker.

Compiling is slow (seconds for a large forest) and needs the model loaded, so it runs in a Celery
task queued after the registration commits, or on demand by the pre-deployment checks when it has
not run yet. Whether the graph may serve is decided later, by the "Compiled model agrees" check.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from registry import compilation, predictors
from registry.audit import audit_event_create
from registry.choices import ArtifactFormat, AuditAction, FileKind
from registry.loading import load_version_model, verified_path
from registry.models import Compilation, ModelVersion, compiled_file_path
from registry.schema import parse_schema

logger = logging.getLogger(__name__)

COMPILED_FILENAME = "model.onnx"
COMPILATION_OFF = "Compilation is switched off on this instance (MF_COMPILE_MODELS)."


def compilation_create(*, version: ModelVersion) -> Compilation:
    """The version's compiled-engine row at registration: pending, or disabled by MF_COMPILE_MODELS.

    An attached ONNX export becomes the candidate instead of a compiled graph, and is checked the same way.
    """
    attached = version.files.filter(kind=FileKind.ONNX).exists()
    source = Compilation.Source.ATTACHED if attached else Compilation.Source.COMPILED
    if settings.MF_COMPILE_MODELS:
        return Compilation.objects.create(version=version, source=source)
    return Compilation.objects.create(
        version=version,
        source=source,
        status=Compilation.Status.DISABLED,
        error=COMPILATION_OFF,
        finished_at=timezone.now(),
    )


def compilation_run(*, version_id: int) -> Compilation | None:
    """Compile a pending version once; a second call (or a lost race) finds it done and returns.

    Never raises for a problem with the model: an estimator the converter does not know is recorded
    as unsupported, any other failure as failed, each with the reason for the version page.
    A version whose artifact types no reviewer has accepted yet stays pending: loading it would run
    code nobody vouched for, so it is compiled once accepted (or by the checks, which come later).
    """
    version = ModelVersion.objects.select_related("model").filter(pk=version_id).first()
    if version is None:
        return None
    row = Compilation.objects.filter(version=version).first()
    if row is None:
        # Versions registered before compilation existed get their row on first use.
        row, _ = Compilation.objects.get_or_create(version=version)
    if row.status != Compilation.Status.PENDING:
        return row
    if not settings.MF_COMPILE_MODELS:
        return _finish(row, status=Compilation.Status.DISABLED, error=COMPILATION_OFF)
    if not version.is_trusted:
        return row
    try:
        data, converter, source = _candidate(version, row)
    except compilation.UnsupportedModelError as exc:
        return _finish(row, status=Compilation.Status.UNSUPPORTED, error=str(exc))
    except Exception as exc:  # a failed compilation leaves the native model serving, with the reason shown
        logger.warning("Compiling %s failed", version, exc_info=True)
        message = str(exc) if isinstance(exc, compilation.CompilationError) else f"{type(exc).__name__}: {exc}"
        return _finish(row, status=Compilation.Status.FAILED, error=message)
    name = default_storage.save(compiled_file_path(row, COMPILED_FILENAME), ContentFile(data))
    finished = _finish(
        row,
        status=Compilation.Status.COMPILED,
        source=source,
        file=name,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        converter=converter,
    )
    if finished.file.name != name:  # someone else compiled it first: keep theirs only
        default_storage.delete(name)
    return finished


def _candidate(version: ModelVersion, row: Compilation) -> tuple[bytes, dict[str, Any], str]:
    """The graph to verify: the author's attached export, or the model compiled here."""
    attached = version.files.filter(kind=FileKind.ONNX).first()
    if attached is not None:
        return verified_path(attached).read_bytes(), {"attached": attached.filename}, Compilation.Source.ATTACHED
    if version.format == ArtifactFormat.ONNX:
        raise compilation.UnsupportedModelError("unsupported: the artifact is an ONNX graph already and serves as one")
    predictor = load_version_model(version)
    estimator = getattr(predictor, "estimator", None)
    if not isinstance(predictor, predictors.EstimatorPredictor) or estimator is None:
        raise compilation.UnsupportedModelError("unsupported: not a scikit-learn model")
    fields = parse_schema(version.input_schema or [])
    types = {spec.name: spec.type for spec in fields}
    fitted_names = getattr(estimator, "feature_names_in_", None)
    # The order the estimator was fitted on: a single-tensor graph stacks the columns in this order.
    names = [str(name) for name in fitted_names] if fitted_names is not None else [spec.name for spec in fields]
    compiled = compilation.compile_estimator(estimator, compilation.column_kinds(names, types))
    return compiled.onnx, compiled.converter, Compilation.Source.COMPILED


def _finish(row: Compilation, *, status: str, **values: Any) -> Compilation:
    with transaction.atomic():
        # Compare-and-set: of two runs at once, the first to finish writes; the second finds it done.
        updated = Compilation.objects.filter(pk=row.pk, status=Compilation.Status.PENDING).update(
            status=status, finished_at=timezone.now(), **values
        )
        finished = Compilation.objects.select_related("version__model").get(pk=row.pk)
        if updated:
            audit_event_create(
                actor=None,
                action=AuditAction.VERSION_COMPILED,
                version=finished.version,
                old={"status": Compilation.Status.PENDING},
                new={"status": status, "source": finished.source, "sha256": finished.sha256},
                reason=finished.error,
            )
    return finished
