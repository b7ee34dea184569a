"""The fields of a record as the text formats write them (JSONL, SQLite, logging)."""

from __future__ import annotations

import json
import math

from ..format import RECORD_KEYS
from ..format import iso_timestamp as format_timestamp
from ..record import UsageRecord

__all__ = ["FIELDS", "fields", "iso_timestamp", "latency", "tags_json"]

FIELDS = RECORD_KEYS
"""Field names, in this order, of every format that names its fields (JSONL keys, SQLite columns)."""


def iso_timestamp(record: UsageRecord) -> str:
    """The record's time as every format writes it (:func:`tokenlog.format.iso_timestamp`)."""
    return format_timestamp(record.timestamp)


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
