import logging

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from config.celery import app as celery_app
from config.errors import RETRY_AFTER_SECONDS

logger = logging.getLogger(__name__)


def _database_ok() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means "down"; the message says why
        return f"{type(exc).__name__}: {exc}"
    return None


def _broker_ok() -> str | None:
    try:
        with celery_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # any failure means "down"; the message says why
        return f"{type(exc).__name__}: {exc}"
    return None


@login_not_required
@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer; 503 naming whichever is down."""
    problems = {"database": _database_ok(), "broker": _broker_ok()}
    body = {name: ("ok" if problem is None else f"down: {problem}") for name, problem in problems.items()}
    failing = any(problem is not None for problem in problems.values())
    if failing:
        logger.warning("Health check failing: %s", body)
    response = JsonResponse({"status": "down" if failing else "ok", **body}, status=503 if failing else 200)
    if failing:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)  # as every 503 of config/errors.py
    return response
