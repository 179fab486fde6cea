"""Queueing Celery tasks from services, by name, once the current transaction commits.

Services never import a tasks module: the tasks import the services they run, so the dependency points
one way. Each app's `queue.py` names its tasks once and calls `queue_on_commit`; every app's tasks are
registered at start-up by its AppConfig, so an unknown name fails loudly instead of reaching the broker.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from config.celery import app


def queue_on_commit(
    task_name: str,
    *args: object,
    on_refused: Callable[[Exception], object] | None = None,
    robust: bool = False,
) -> None:
    """Queue `task_name(*args)` after the commit (at once outside a transaction).

    A broker that refuses the message (it is down) leaves nothing to do the work: `on_refused` marks the
    row failed with the error, so that it can be asked for again instead of waiting for ever, and the error
    goes on (a 503 for a request). With `robust`, the error is logged instead: a notification that
    cannot be queued must not fail the change it reports.
    """
    task = app.tasks[task_name]

    def send() -> None:
        try:
            task.apply_async(args=args)
        except Exception as exc:
            if on_refused is not None:
                on_refused(exc)
            raise

    # Django names the callback when it logs a robust failure: name it after the task, not `send`.
    send.__qualname__ = task_name
    transaction.on_commit(send, robust=robust)


def refusal(exc: Exception, *, advice: str) -> str:
    """The error stored on a row whose task the broker refused."""
    return f"Could not be queued ({type(exc).__name__}: {exc}); {advice}"
