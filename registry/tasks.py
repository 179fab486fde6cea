from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from django.conf import settings

from registry import webhooks
from registry.check_runs import checks_record
from registry.choices import FileKind
from registry.compilation_services import compilation_run
from registry.loading import verified_path
from registry.models import ModelVersion, WebhookDelivery
from registry.profiling import profile_frame
from registry.tables import read_table

logger = logging.getLogger(__name__)

WEBHOOK_MAX_RETRIES = 6


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


@shared_task(bind=True, acks_late=True, max_retries=WEBHOOK_MAX_RETRIES, time_limit=60, soft_time_limit=50)
def deliver_webhook(self: Task[Any, Any], delivery_id: int) -> None:
    """POST a webhook delivery until it succeeds or the retries run out, recording every attempt.

    Idempotent: a delivery that is no longer pending returns at once. Queue it (registry/queue.py);
    calling it directly cannot retry.
    """
    delivery = WebhookDelivery.objects.select_related("consumer").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return
    attempt = webhooks.webhook_post(delivery=delivery)
    retries = self.request.retries
    out_of_retries = retries >= (self.max_retries if self.max_retries is not None else WEBHOOK_MAX_RETRIES)
    delivery = webhooks.webhook_delivery_record_attempt(delivery_id=delivery_id, attempt=attempt, final=out_of_retries)
    if delivery.status == WebhookDelivery.Status.PENDING:
        # Exponential backoff: with the default, the last retry comes about half an hour after the first try.
        raise self.retry(countdown=settings.MF_WEBHOOK_BACKOFF_SECONDS * 2**retries)
