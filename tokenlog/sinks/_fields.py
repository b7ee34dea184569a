"""The fields of a record as the text formats write them (JSONL, SQLite, logging)."""

from __future__ import annotations

import json
import math

from ..record import FIELD_NAMES, UsageRecord

__all__ = ["FIELDS", "fields", "iso_timestamp", "latency", "tags_json"]

FIELDS = FIELD_NAMES
"""Field names, in this order, of every format that names its fields (JSONL keys, SQLite columns)."""


_second: tuple[int, int, int, int, int, int, str] = (0, 0, 0, 0, 0, 0, "")
"""(year, month, day, hour, minute, second, "YYYY-MM-DDTHH:MM:SS") of the last second formatted; replaced whole."""


def iso_timestamp(record: UsageRecord) -> str:
    """ISO 8601 in UTC with microseconds and ``+00:00``, as in the CSV: ``2023-10-27T10:30:00.123456+00:00``.

    Rows come many to a second, so the part up to the seconds is kept from the last call: this is
    about twice as fast as ``isoformat`` on the hot path. Record timestamps are always in UTC.
    """
    global _second
    ts = record.timestamp
    cached = _second
    if (
        ts.second == cached[5]
        and ts.minute == cached[4]
        and ts.hour == cached[3]
        and ts.day == cached[2]
        and ts.month == cached[1]
        and ts.year == cached[0]
    ):
        return f"{cached[6]}.{ts.microsecond:06d}+00:00"
    text = ts.isoformat(timespec="microseconds")
    _second = (ts.year, ts.month, ts.day, ts.hour, ts.minute, ts.second, text[:19])
    return text


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
