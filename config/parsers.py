"""JSON from clients, refused with a 400 when it would make a 500 further on.

Python's json module parses values that the rest of the request cannot handle: a value nested a
thousand levels deep raises RecursionError (not a ValueError, so DRF's parser lets it through), and
one nested a little less parses but then fails in whatever walks it recursively (a serializer, a
query, the renderer), or is stored and fails every later read. A number like 1e400 parses as
infinity, and NUL characters and unpaired surrogates parse into strings that PostgreSQL and the UTF-8
renderer refuse. `json_loads` refuses all of them as invalid JSON; `JSONParser` uses it for every
request body, and the services that parse JSON sent in a multipart field use it too. The form parsers
refuse NUL characters in fields, which no serializer field checks before a lookup (a slug of a related
object, say) and PostgreSQL refuses.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, NoReturn

from django.conf import settings
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from rest_framework import parsers
from rest_framework.exceptions import ParseError

if TYPE_CHECKING:  # the stubs' type of a parsed form, which Django has no class for
    from django.http.request import _ImmutableQueryDict

# Far deeper than any model input, params or schema, and shallow enough that code walking a value
# recursively (several frames per level) stays well within Python's recursion limit of 1,000.
MAX_JSON_DEPTH = 100

TOO_DEEP = f"JSON nested too deeply: more than {MAX_JSON_DEPTH} levels of arrays and objects."

# Only a text with an escape of NUL or of a surrogate can hold one (the parser refuses them unescaped, as
# control characters or as invalid UTF-8): other values are not walked string by string.
_NUL_OR_SURROGATE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_REFUSED_CHARACTER = re.compile("[\x00\ud800-\udfff]")


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number.")


def _finite_float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        shown = literal if len(literal) <= 20 else f"{literal[:20]}…"
        raise ValueError(f"The number {shown} is too large (the largest is about 1.8e308).")
    return number


def _deeper_than(value: Any, limit: int) -> bool:
    # Level by level rather than recursively: the value may be as deep as the parser allowed.
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for container in level
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, dict | list)
        ]
    return False


def _refused_character(value: Any) -> str | None:
    """The problem with the first string (key or value) holding NUL or an unpaired surrogate, if any."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and (found := _REFUSED_CHARACTER.search(item)):
            if found.group() == "\x00":
                return "Strings may not contain the NUL character (\\u0000)."
            return (
                f"Strings may not contain an unpaired surrogate (\\u{ord(found.group()):04x}): it is not a character."
            )
    return None


def json_loads(text: str, *, allow_nan: bool = False) -> Any:
    """json.loads, refusing with ValueError (as for any invalid JSON) what would fail further on: more
    than MAX_JSON_DEPTH levels, NaN and Infinity, numbers too large for a float, NUL characters and
    unpaired surrogates in strings. Integers of any size are kept: a schema says where they fit.

    `allow_nan` keeps NaN and infinities, for files other tools write with them (MLflow's input examples
    mark missing values NaN) and that are never stored as JSON.
    """
    try:
        if allow_nan:
            value = json.loads(text)
        else:
            value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError(TOO_DEEP) from None
    # A text with fewer brackets cannot be deeper: most requests are never walked.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _deeper_than(value, MAX_JSON_DEPTH):
        raise ValueError(TOO_DEEP)
    if _NUL_OR_SURROGATE_ESCAPE.search(text) and (problem := _refused_character(value)):
        raise ValueError(problem)
    return value


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, through json_loads: what it refuses is a 400 "JSON parse error"."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
            if not _is_utf8(encoding):
                # Other codecs (UTF-16, UTF-7) can decode to unpaired surrogates without an escape.
                text.encode("utf-8")
            return json_loads(text)
        except ValueError as exc:  # UnicodeError is one
            raise ParseError(f"JSON parse error - {exc}") from exc


def _is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("_", "-") in ("utf-8", "utf8")


def _refuse_nul(data: QueryDict) -> None:
    for name, values in data.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            raise ParseError("Form fields may not contain the NUL character (%00).")


class FormParser(parsers.FormParser):
    """DRF's form parser, refusing NUL characters."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> _ImmutableQueryDict:
        data = super().parse(stream, media_type, parser_context)
        _refuse_nul(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    """DRF's multipart parser, refusing NUL characters in fields (Django drops them from file names)."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> parsers.DataAndFiles[_ImmutableQueryDict, MultiValueDict]:
        parsed = super().parse(stream, media_type, parser_context)
        _refuse_nul(parsed.data)
        return parsed
