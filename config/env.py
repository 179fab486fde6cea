"""Typed readers for settings that come from the environment.

A bad value fails loudly at start-up with ImproperlyConfigured instead of surfacing later as a
confusing runtime error.
"""

import os
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be one of {sorted(_TRUE | _FALSE)}, got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_hosts(name: str) -> list[str]:
    """A comma list of `host`, `host:port` or `.domain` entries (IPv6 in brackets), lower-cased.

    Only names and ports: a scheme, a path or credentials in an entry means it was misunderstood.
    """
    hosts = []
    for entry in env_list(name, []):
        parts = urlsplit(f"//{entry}")
        try:
            parts.port  # noqa: B018 - parsing the port is the check
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: bad port in {entry!r}") from exc
        if not parts.hostname or "@" in entry or parts.path or parts.query or parts.fragment:
            raise ImproperlyConfigured(f"{name} entries are host, host:port or .domain, got {entry!r}")
        hosts.append(entry.lower())
    return hosts
