from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.exceptions import ValidationError as DjangoValidationError
from django.template.defaultfilters import filesizeformat
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import BasePagination, PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView
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


class ContentTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request is larger than this server accepts."
    default_code = "content_too_large"


def request_limit_detail(exc: RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent) -> str:
    """Which of Django's limits on a request body `exc` reports, and the setting that sets it."""
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return f"The request has too many fields: the limit is {limit} fields (DATA_UPLOAD_MAX_NUMBER_FIELDS)."
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return f"The request has too many files: the limit is {limit} files (DATA_UPLOAD_MAX_NUMBER_FILES)."
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return (
        f"The request body is too large: the limit is {limit} bytes ({filesizeformat(limit)}, "
        "DATA_UPLOAD_MAX_MEMORY_SIZE), not counting uploaded files."
    )


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus services' ValidationErrors become 400s by field, ConflictErrors 409s, UpstreamErrors 502s,
    and a body past Django's limits a 413 naming the limit (Django would answer its HTML 400 page)."""
    # Raised by Django when DRF reads the body (request.data), and not wrapped by DRF.
    if isinstance(exc, RequestDataTooBig | TooManyFieldsSent | TooManyFilesSent):
        exc = ContentTooLarge(request_limit_detail(exc))
    if isinstance(exc, ConflictError):
        exc = Conflict(str(exc))
    if isinstance(exc, UpstreamError):
        exc = BadGateway(str(exc))
    if isinstance(exc, DjangoValidationError):
        detail: Any = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        exc = exceptions.ValidationError(detail)
    return drf_exception_handler(exc, context)


# An APIView whose GET answers one page of a list; the schema documents the page's shape from
# pagination_class. (A comment, not a docstring: drf-spectacular would make a docstring every
# operation's description.)
class PaginatedListApi(APIView):
    pagination_class: type[BasePagination] | None = PageNumberPagination


def paginated_response(
    *, request: Any, view: PaginatedListApi, queryset: Any, serializer_class: type[serializers.BaseSerializer]
) -> Response:
    assert view.pagination_class is not None
    paginator = view.pagination_class()
    page: list[Any] | None = paginator.paginate_queryset(queryset, request, view=view)
    serializer = serializer_class(page, many=True, context={"request": request})
    return paginator.get_paginated_response(serializer.data)
