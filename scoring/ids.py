"""Prediction ids that tell their time: UUIDv7 (RFC 9562), so that an archived prediction can be found
from its id alone (its hour names the archive files to read).

Python 3.11 has no uuid.uuid7; the layout is 48 bits of Unix milliseconds, the version (7), 12 random
bits, the RFC variant (0b10) and 62 random bits.
"""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

_MILLISECONDS = (1 << 48) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def uuid7(at: datetime | None = None) -> uuid.UUID:
    """A new UUIDv7 stamped with `at` (an aware datetime; default now), to the millisecond.

    Integer arithmetic, not float timestamps: a time on the hour must not round into the hour before.
    """
    milliseconds = time.time_ns() // 1_000_000 if at is None else _milliseconds(at)
    random_a = secrets.randbits(12)
    random_b = secrets.randbits(62)
    value = (milliseconds & _MILLISECONDS) << 80 | 0x7 << 76 | random_a << 64 | 0b10 << 62 | random_b
    return uuid.UUID(int=value)


def first_uuid7(at: datetime) -> uuid.UUID:
    """The smallest UUIDv7 stamped with `at`'s millisecond: every UUIDv7 made from then on sorts after it."""
    return uuid.UUID(int=(_milliseconds(at) & _MILLISECONDS) << 80 | 0x7 << 76 | 0b10 << 62)


def _milliseconds(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(milliseconds=1)


def uuid7_time(value: uuid.UUID) -> datetime | None:
    """When a UUIDv7 was made (UTC, to the millisecond); None for other versions, which carry no time."""
    if value.version != 7:
        return None
    return datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC)
