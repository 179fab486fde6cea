"""Pre-deployment check runs: requested by people (or by an approval, in workflow.py), run by a worker.

The checks themselves (registry/checks/) compute and write nothing: here a run is created and queued,
and its outcome stored, after which the review workflow moves the version on.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from config.api import ConflictError
from registry import permissions, workflow
from registry.audit import audit_event_create
from registry.checks.results import FAILED
from registry.checks.runner import run_checks
from registry.choices import AuditAction
from registry.compilation_services import compilation_run
from registry.models import CheckRun, ModelVersion

logger = logging.getLogger(__name__)


UNTRUSTED_REFUSAL = (
    "The checks load the model, and its artifact holds types nobody has accepted yet: "
    "a reviewer accepts them on the version page first."
)


def checks_request(*, actor: Any, version: ModelVersion) -> CheckRun:
    """Run the checks again on demand (reviewers and the author)."""
    if not permissions.may_request_checks(actor, version):
        raise PermissionDenied("Only reviewers, the author and the model's owner may run the checks.")
    if not version.is_trusted:  # every check would fail to load the model, each with the same error
        raise ValidationError({"detail": [UNTRUSTED_REFUSAL]})
    with transaction.atomic():
        if version.check_runs.filter(status=CheckRun.Status.RUNNING).exists():
            raise ConflictError(f"The checks of {version} are already running.")
        check_run = workflow.checks_start(actor=actor, version=version)
        audit_event_create(
            actor=actor, action=AuditAction.CHECKS_REQUESTED, version=version, new={"check_run": check_run.pk}
        )
    return check_run


def checks_record(*, check_run_id: int) -> CheckRun | None:
    """Compute and store a requested run, then move the version by its outcome. Idempotent."""
    check_run = CheckRun.objects.select_related("version__model").filter(pk=check_run_id).first()
    if check_run is None or check_run.status != CheckRun.Status.RUNNING:
        return check_run
    # The checks verify the compiled graph: compile now if the registration's task has not (yet).
    try:
        compilation_run(version_id=check_run.version_id)
    except Exception:  # e.g. the artifact store is full: the checks still run, and the native model serves
        logger.exception("Compiling %s for its checks failed", check_run.version)
    try:
        outcome = run_checks(check_run.version)
        status = CheckRun.Status.PASSED if outcome.passed else CheckRun.Status.FAILED
        results = [result.as_json() for result in outcome.results]
        environment, error = outcome.serving_environment, ""
    except Exception as exc:  # a bug in a check must not leave the run "running" forever
        logger.exception("Checks of %s could not run", check_run.version)
        status, results, environment, error = CheckRun.Status.ERROR, [], {}, f"{type(exc).__name__}: {exc}"
    with transaction.atomic():
        locked = CheckRun.objects.select_for_update().get(pk=check_run.pk)
        if locked.status != CheckRun.Status.RUNNING:
            return locked
        locked.status, locked.results, locked.serving_environment, locked.error = status, results, environment, error
        locked.finished_at = timezone.now()
        locked.save()
        version = ModelVersion.objects.select_for_update().select_related("model").get(pk=locked.version_id)
        audit_event_create(
            actor=None,
            action=AuditAction.CHECKS_COMPLETED,
            version=version,
            new={
                "check_run": locked.pk,
                "status": status,
                "failed": [r["name"] for r in results if r["status"] == FAILED],
            },
        )
        workflow.version_checks_finished(version=version, check_run=locked)
    return locked
