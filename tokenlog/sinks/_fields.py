"""The fields of a record as the text formats write them (JSONL, SQLite, logging)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from ..record import FIELD_NAMES, UsageRecord

__all__ = ["FIELDS", "fields", "iso_timestamp", "latency", "second_of", "tags_json"]

FIELDS = FIELD_NAMES
"""Field names, in this order, of every format that names its fields (JSONL keys, SQLite columns)."""


class _Second(NamedTuple):
    """One second of time and its text up to the seconds, in str and bytes."""

    start: datetime
    end: datetime  # start + 1 s (start itself in year 9999's last second: then nothing is in range)
    text: str  # "YYYY-MM-DDTHH:MM:SS"
    data: bytes


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_SECOND = timedelta(seconds=1)
_second = _Second(_EPOCH, _EPOCH, "", b"")
"""The last second formatted; replaced whole, so threads read it without a lock."""


def second_of(ts: datetime) -> _Second:
    """The second ``ts`` falls in, with its text: cached, because rows come many to a second.

    ``ts`` must be in UTC (record timestamps always are). One range test (two datetime
    comparisons) decides a hit: five times cheaper than comparing six fields, twice as cheap
    as ``isoformat``.
    """
    global _second
    cached = _second
    if cached.start <= ts < cached.end:
        return cached
    start = ts.replace(microsecond=0)
    try:
        end = start + _ONE_SECOND
    except OverflowError:  # the very last second datetime holds
        end = start
    text = start.isoformat()[:19]
    _second = cached = _Second(start, end, text, text.encode())
    return cached


def iso_timestamp(record: UsageRecord) -> str:
    """ISO 8601 in UTC with microseconds and ``+00:00``, as in the CSV: ``2023-10-27T10:30:00.123456+00:00``."""
    ts = record.timestamp
    return "%s.%06d+00:00" % (second_of(ts).text, ts.microsecond)  # noqa: UP031 - measured: half an f-string's time


def latency(record: UsageRecord) -> float | None:
    """Latency in milliseconds, three decimals; ``None`` when unknown or not a finite number."""
    value = record.latency_ms
    return None if value is None or not math.isfinite(value) else round(value, 3)


def tags_json(record: UsageRecord) -> str:
    """The tags as compact JSON with sorted keys, ASCII only (other characters as ``\\uXXXX`` escapes)."""
    return json.dumps(dict(record.tags), sort_keys=True, separators=(",", ":"))


def fields(record: UsageRecord) -> dict[str, object]:
    """The record as a flat dict keyed by :data:`FIELDS`; ``tags`` is a plain dict with sorted keys."""
    return {
        "timestamp": iso_timestamp(record),
        "model": record.model,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "total_tokens": record.total_tokens,
        "session": record.session,
        "function": record.function,
        "latency_ms": latency(record),
        "request_id": record.request_id,
        "tags": dict(sorted(record.tags.items())),
    }
