"""The scoring tasks that services queue, each named once and after its task (config/queue.py: services
never import tasks)."""

from __future__ import annotations

from collections.abc import Callable

from config.queue import queue_on_commit


def start_batch_run(run_id: int, *, on_refused: Callable[[Exception], object]) -> None:
    """Snapshot a run's input and queue its chunks, once the current transaction commits."""
    queue_on_commit("scoring.tasks.start_batch_run", run_id, on_refused=on_refused)
