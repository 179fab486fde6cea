from __future__ import annotations

import logging

from celery import shared_task

# Registers the webhook delivery task with workers (Celery autodiscovers tasks.py modules only).
from registry import notification_tasks  # noqa: F401
from registry.check_runs import checks_record
from registry.choices import FileKind
from registry.compilation_services import compilation_run
from registry.loading import verified_path
from registry.models import ModelVersion
from registry.profiling import profile_frame
from registry.tables import read_table

logger = logging.getLogger(__name__)


@shared_task(
    acks_late=True,
    autoretry_for=(OSError,),
    max_retries=3,
    retry_backoff=True,
    time_limit=600,
    soft_time_limit=570,
)
def profile_reference_data(version_id: int) -> None:
    """Summarise a version's reference data once; a second run finds it done and returns."""
    version = ModelVersion.objects.filter(pk=version_id, reference_profile__isnull=True).first()
    if version is None:
        return
    reference = version.files.filter(kind=FileKind.REFERENCE_DATA).first()
    if reference is None:
        return
    frame = read_table(verified_path(reference))
    profile = profile_frame(frame)
    # Compare-and-set: a concurrent duplicate of this task writes nothing.
    updated = ModelVersion.objects.filter(pk=version_id, reference_profile__isnull=True).update(
        reference_profile=profile
    )
    logger.info("Profiled reference data of version %s (%s rows, updated=%s)", version_id, len(frame), updated)


@shared_task(acks_late=True, time_limit=900, soft_time_limit=870)
def run_version_checks(check_run_id: int) -> None:
    """Run a requested pre-deployment check run; a duplicate delivery finds it finished and returns."""
    checks_record(check_run_id=check_run_id)


@shared_task(
    acks_late=True, autoretry_for=(OSError,), max_retries=3, retry_backoff=True, time_limit=900, soft_time_limit=870
)
def compile_version(version_id: int) -> None:
    """Compile a version to ONNX once; a duplicate delivery finds the compilation finished and returns."""
    compilation_run(version_id=version_id)
