from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


class ConflictError(Exception):
    """Raised by services when the current state forbids a request; pages show it, the API answers 409."""


class BadGateway(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "A server this request depends on did not answer as expected."
    default_code = "bad_gateway"


class UpstreamError(Exception):
    """Raised by services when another server they fetch from fails or is unreachable; the API answers 502."""


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus services' ValidationErrors become 400s by field, ConflictErrors 409s, UpstreamErrors 502s."""
    if isinstance(exc, ConflictError):
        exc = Conflict(str(exc))
    if isinstance(exc, UpstreamError):
        exc = BadGateway(str(exc))
    if isinstance(exc, DjangoValidationError):
        detail: Any = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail)
    return drf_exception_handler(exc, context)


def paginated_response(
    *, request: Any, view: Any, queryset: Any, serializer_class: type[serializers.BaseSerializer]
) -> Response:
    paginator = PageNumberPagination()
    page: list[Any] | None = paginator.paginate_queryset(queryset, request, view=view)
    serializer = serializer_class(page, many=True, context={"request": request})
    return paginator.get_paginated_response(serializer.data)
