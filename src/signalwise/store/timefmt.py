"""Timestamps as the database stores them.

Interval records carry zone-aware instants, stored in UTC (PostgreSQL
`timestamptz`; SQLite text in SQLAlchemy's own format, read back as UTC).
Hi-res events carry naive local time, as ATSPM tools write it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

UTC = dt.UTC


def sqlite_text(moment: dt.datetime) -> str:
    """The text SQLAlchemy's SQLite DATETIME writes, so raw inserts compare equal."""
    return moment.replace(tzinfo=None).isoformat(" ", "microseconds")  # YYYY-MM-DD HH:MM:SS.ffffff


def to_utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {moment.isoformat()} has no time zone")
    return moment.astimezone(UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A zone-aware instant; always given back in UTC, on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = to_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
