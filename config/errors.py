"""A dependency that is down (PostgreSQL, the broker) answers 503 with Retry-After, never a 500.

Clients and load balancers treat 503 as "try again shortly", which is what an outage of the database
or the broker means for this app: nothing is wrong with the request, and the app recovers by itself
(Django reconnects on the next request, Celery's producer on the next publish). Two layers catch it:

- `DependencyUnavailableMiddleware.process_exception`, for errors raised by views (DRF hands
  exceptions it does not know back to Django, so API views get here too);
- `server_error` (handler500), for errors raised outside views, e.g. a session or user loaded by a
  middleware: Django calls it while the exception is being handled, so it can still look at it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.defaults import page_not_found as default_page_not_found
from django.views.defaults import server_error as default_server_error
from kombu.exceptions import OperationalError as BrokerOperationalError

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5

DATABASE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, InterfaceError)
BROKER_ERRORS: tuple[type[BaseException], ...] = (BrokerOperationalError,)
try:  # the Redis client is there only with the Redis transport
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    BROKER_ERRORS += (RedisConnectionError, RedisTimeoutError)
except ImportError:  # pragma: no cover - a deployment without Redis
    pass


def unavailable_dependency(exception: BaseException | None) -> str | None:
    """'database' or 'broker' when the exception means that dependency is unreachable, else None."""
    if isinstance(exception, DATABASE_ERRORS):
        return "database"
    if isinstance(exception, BROKER_ERRORS):
        return "broker"
    return None


def unavailable_response(request: HttpRequest, dependency: str) -> HttpResponse:
    """503 naming what is down; JSON on the API, a plain page otherwise (templates may need the database)."""
    detail = f"The {dependency} is unavailable; try again in a few seconds."
    response: HttpResponse
    if request.path_info.startswith("/api/") or request.path_info == "/healthz":
        response = JsonResponse({"detail": detail, "unavailable": dependency}, status=503)
    else:
        response = HttpResponse(
            f"<!doctype html><title>Unavailable</title><h1>Model Factory is briefly unavailable</h1><p>{detail}</p>",
            status=503,
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DependencyUnavailableMiddleware:
    """Turns a view's database or broker connection error into a 503 (logged as a warning, no traceback)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = self.get_response(request)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        dependency = unavailable_dependency(exception)
        if dependency is None:
            return None
        logger.warning(
            "%s %s: %s down: %s: %s", request.method, request.path, dependency, type(exception).__name__, exception
        )
        return unavailable_response(request, dependency)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: under /api/, a URL no route matches (e.g. a version "abc") answers JSON like every
    other 404 of the API, so clients parse one error shape; pages keep Django's page."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": f"No such endpoint or object: {request.path_info}"}, status=404)
    return default_page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a 503 if the uncaught exception was a dependency outage, else Django's 500."""
    dependency = unavailable_dependency(sys.exc_info()[1])
    if dependency is not None:
        return unavailable_response(request, dependency)
    return default_server_error(request)
