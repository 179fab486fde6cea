"""The error answers of the API, declared once so each endpoint's schema lists the ones it gives.

Every error body is a JSON object: `{"detail": "..."}`, or for bad input the failing fields, each with
its reasons (`{"field": ["reason", ...]}`, nested for list items). Fuzzing from the schema
(tests/security/test_api_fuzz.py) checks that an endpoint answers only what it declares.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorDetail = inline_serializer("ErrorDetail", {"detail": serializers.CharField()})

_DESCRIPTIONS = {
    400: "Bad input: the failing fields with their reasons, or a detail",
    401: "No valid credentials (token missing, wrong, revoked or expired)",
    403: "Signed in, but your role may not do this",
    404: "No such object",
    409: "Not allowed in the current state",
    410: "Gone",
    413: "The request body is too large",
    415: "Unsupported Content-Type",
    429: "Too many requests: the rate limit of this token",
    502: "A server this request fetches from (e.g. an MLflow tracking server) is unreachable or answered wrongly",
}


def error_responses(*codes: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for `codes`; `descriptions` (e.g. `e409="..."`) say more than the default."""
    responses: dict[int, OpenApiResponse] = {}
    for code in codes:
        description = descriptions.get(f"e{code}", _DESCRIPTIONS[code])
        schema: Any = OpenApiTypes.OBJECT if code == 400 else ErrorDetail
        responses[code] = OpenApiResponse(response=schema, description=description)
    return responses


# What any authenticated endpoint may answer before its own code runs.
COMMON_ERRORS = (401, 403, 404)
