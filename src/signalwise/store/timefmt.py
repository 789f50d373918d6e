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


def days_before(now: dt.datetime, days: float, what: str) -> dt.datetime:
    """Where a retention of `days` cuts: the instant `days` before `now` (`what` names the kind in errors).

    One reaching back past the calendar keeps everything; one below 0 or not a number is refused: it would
    remove what was just written."""
    if not days >= 0:  # NaN fails this too
        raise ValueError(f"retention of {what}: {days} days; it must be 0 or more")
    try:
        return now - dt.timedelta(days=days)
    except OverflowError:
        return dt.datetime(1, 1, 2, tzinfo=UTC)  # a day after the first: still valid in any local zone


def utc_text(moment: dt.datetime | str) -> str:
    """An instant as the API and the store's readers write every one: ISO 8601 in UTC with `Z`
    (`2026-11-28T18:42:57Z`, `…57.266Z`), to the precision it was given; naive means UTC, text is parsed
    (`+00:00`, `+01:00` and `Z` alike)."""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    spec = "seconds" if not moment.microsecond else "milliseconds" if not moment.microsecond % 1000 else "microseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


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
