"""Tasks the registry's services queue, by name, after commit (config/queue.py); each function is named
after the task it queues."""

from __future__ import annotations

from config.queue import queue_on_commit
from registry.models import CheckRun, ModelVersion


def run_version_checks(check_run: CheckRun) -> None:
    queue_on_commit("registry.tasks.run_version_checks", check_run.pk)


def compile_version(version: ModelVersion) -> None:
    queue_on_commit("registry.tasks.compile_version", version.pk)


def profile_reference_data(version: ModelVersion) -> None:
    queue_on_commit("registry.tasks.profile_reference_data", version.pk)


def webhook_delivery(delivery_id: int) -> None:
    # Robust: the change it reports is committed; a refused task is logged, not an error for the caller.
    queue_on_commit("registry.tasks.deliver_webhook", delivery_id, robust=True)
