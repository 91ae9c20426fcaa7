"""RFC 3339 UTC timestamps with a fixed microsecond width, e.g. ``2026-11-24T07:30:00.000000Z``."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(value: datetime) -> str:
    assert value.tzinfo is not None, "timestamps from the database are timezone-aware"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339_or_none(value: datetime | None) -> str | None:
    return None if value is None else rfc3339(value)
