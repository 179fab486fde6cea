from typing import Any

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.views.defaults import bad_request


class PagesLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Every page needs a signed-in user; the API authenticates (tokens too) in DRF instead.

    API views answer 401/403 as JSON rather than redirecting a program to the login page.
    """

    def process_view(
        self,
        request: HttpRequest,
        view_func: Any,
        view_args: Any,
        view_kwargs: Any,
    ) -> HttpResponseBase | None:
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


class RefuseNulInUrlMiddleware:
    """A NUL character in the URL is answered before any view runs: PostgreSQL refuses NUL in text, so a
    lookup with it was a 500 (an entity id in an API path, a search on a page).

    In the path it names nothing: 404 (JSON under /api/, by config.errors.not_found). In the query string
    of a page: 400. The API's query parameters go through each view's serializer, which names the field.
    """

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if "\x00" in request.path_info:
            raise Http404("No object has a name with a NUL character.")
        query = request.META.get("QUERY_STRING", "")
        if ("%00" in query or "\x00" in query) and not request.path_info.startswith("/api/"):
            return bad_request(request, SuspiciousOperation("The URL may not contain the NUL character (%00)."))
        response: HttpResponseBase = self.get_response(request)
        return response


def login_lockout_response(
    request: HttpRequest, original_response: HttpResponseBase | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """What a locked-out login gets (axes' AXES_LOCKOUT_CALLABLE): 429 with Retry-After, as JSON on the
    API (like DRF's throttling) and as a page in the browser, instead of axes' bare text."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    retry_after = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    detail = (
        f"Too many failed sign-ins for this account from your address. "
        f"Try again in {minutes} minutes, or ask an administrator to unlock it."
    )
    response: HttpResponse
    if request.path_info.startswith("/api/"):
        response = JsonResponse({"detail": detail, "retry_after_seconds": int(retry_after)}, status=429)
    else:
        response = render(request, "registration/locked_out.html", {"detail": detail, "minutes": minutes}, status=429)
    response["Retry-After"] = retry_after
    return response
