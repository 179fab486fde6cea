"""Scoring keeps state in the process (models, rate counters); each test starts without it."""

from __future__ import annotations

import pytest

from scoring import runtime


@pytest.fixture(autouse=True)
def _fresh_process_state() -> None:
    """Model cache and rate-limit counters live in the process; tests reuse primary keys."""
    from django.core.cache import caches

    runtime.models.clear()
    caches["throttle"].clear()
