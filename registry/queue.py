"""Tasks the registry's services queue, by name, after commit (config/queue.py)."""

from __future__ import annotations

from config.queue import queue_on_commit


def webhook_delivery(delivery_id: int) -> None:
    # Robust: the change it reports is committed; a refused task is logged, not an error for the caller.
    queue_on_commit("registry.tasks.deliver_webhook", delivery_id, robust=True)
