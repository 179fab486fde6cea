"""The error answers of the API, declared from what each view does, so a generated client knows them.

Every error body is a JSON object: `{"detail": "..."}`, or for bad input the failing fields, each with
its reasons (`{"field": ["reason", ...]}`, nested for list items). `AutoSchema` adds to every operation
the errors its view can answer whatever its own code does (credentials, role, unknown objects, bad or
oversized bodies, rate limits); views declare with `error_responses` only what their own code adds
(409, 410, 502) or a 400 that says more. Fuzzing every operation from this schema
(tests/security/test_api_fuzz.py) checks that an endpoint answers only what it declares.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular import openapi
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny

ErrorDetail = inline_serializer("ErrorDetail", {"detail": serializers.CharField()})

_DESCRIPTIONS = {
    400: "Bad input: the failing fields with their reasons, or a detail",
    401: "No valid credentials (token missing, wrong, revoked or expired)",
    403: "Signed in, but your role may not do this",
    404: "No such object (or no such page of a list)",
    409: "Not allowed in the current state",
    410: "Gone",
    413: "The request body is too large: the detail names the limit",
    414: "The URL is too long: the web server (gunicorn) refuses request lines over 8,190 bytes, in plain HTML",
    415: "Unsupported Content-Type",
    429: "Too many requests: the rate limit of this token",
    502: "A server this request fetches from (e.g. an MLflow tracking server) is unreachable or answered wrongly",
}

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def error_responses(*codes: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for `codes`; `descriptions` (e.g. `e409="..."`) say more than the default."""
    return {
        code: OpenApiResponse(response=_error_body(code), description=descriptions.get(f"e{code}", _DESCRIPTIONS[code]))
        for code in codes
    }


def _error_body(code: int) -> Any:
    if code == 414:
        return None  # answered by gunicorn before Django sees the request
    return OpenApiTypes.OBJECT if code == 400 else ErrorDetail


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, plus the errors each operation can answer before or around its own code."""

    def _error_codes(self) -> list[int]:
        view = self.view
        codes: list[int] = []
        has_body = self.method in _BODY_METHODS or (
            self.method == "DELETE" and self.get_request_serializer() is not None
        )
        has_query = self.method == "GET" and any(parameter.get("in") == "query" for parameter in self._get_parameters())
        if has_body or has_query:
            codes.append(400)
        if not all(isinstance(permission, AllowAny) for permission in view.get_permissions()):
            codes += [401, 403]
        paginated = self.method == "GET" and self._get_paginator() is not None and self._is_list_view()
        if "{" in self.path or paginated:
            codes.append(404)
        if has_body:
            codes += [413, 415]
        if view.get_throttles():
            codes.append(429)
        codes.append(414)
        return sorted(codes)

    def _get_response_bodies(self, direction: openapi.Direction = "response") -> Any:
        responses = super()._get_response_bodies(direction)
        for status, declared in error_responses(*self._error_codes()).items():
            # A view's own declaration of a code (a fuller description, another body) wins.
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(declared, str(status), direction=direction)
        for code, response in responses.items():
            error_body = _error_body(int(code)) if code >= "400" else None
            if error_body is not None and "content" not in response:
                # Declared with a description only: the body is still the API's error object.
                response["content"] = self._get_response_for_code(error_body, code, direction=direction)["content"]
        return responses

    def _get_request_for_media_type(self, serializer: Any, direction: openapi.Direction = "request") -> Any:
        schema, required = super()._get_request_for_media_type(serializer, direction)
        # A body written as a schema by hand (drf-spectacular calls those optional) that cannot be empty.
        if isinstance(serializer, dict) and serializer.get("minProperties"):
            required = True
        return schema, required

    def _map_basic_serializer(self, serializer: Any, direction: openapi.Direction) -> Any:
        """In answers, every field is required: DRF writes each one, null or not. Only a field a
        serializer declares `required=False` may be left out (e.g. probabilities, for classifiers only)."""
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "response":
            declared = getattr(serializer, "_declared_fields", {})
            optional = {name for name, field in declared.items() if field._kwargs.get("required") is False}
            required = [name for name in schema["properties"] if name not in optional]
            if required:
                schema["required"] = required
        return schema
