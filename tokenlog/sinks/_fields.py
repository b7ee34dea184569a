"""The fields of a record as the text formats write them (JSONL, SQLite, logging)."""

from __future__ import annotations

import json
import math

from ..format import RECORD_KEYS
from ..format import iso_timestamp as format_timestamp
from ..record import UNIT_NAMES, UsageRecord, has_units

__all__ = ["FIELDS", "calls_json", "fields", "iso_timestamp", "latency", "tags_json"]

FIELDS = RECORD_KEYS
"""Field names, in this order, of every format that names its fields (JSONL keys, SQLite columns)."""


def iso_timestamp(record: UsageRecord) -> str:
    """The record's time as every format writes it (:func:`tokenlog.format.iso_timestamp`)."""
    return format_timestamp(record.timestamp)


def latency(record: UsageRecord) -> float | None:
    """Latency in milliseconds, three decimals; ``None`` when unknown or not a finite number."""
    value = record.latency_ms
    return None if value is None or not math.isfinite(value) else round(value, 3)


_TAGS_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
"""``json.dumps(tags, sort_keys=True, separators=(",", ":"))``, made once: ``dumps`` with options builds an
encoder per call (0.8 us of its 2.2 us for one tag)."""

_tags_texts: dict[tuple[tuple[str, str], ...], str] = {}
"""Tags as :func:`tags_json` writes them: a decorator's tags are the same on every row it writes."""
_TAGS_CACHED = 1024  # entries; then it starts afresh, so tags unique to each row never fill it for good
_TAGS_TEXT_CACHED = 512  # characters: longer tags are encoded each time rather than kept


def tags_json(record: UsageRecord) -> str:
    """The tags as compact JSON with sorted keys, ASCII only (other characters as ``\\uXXXX`` escapes)."""
    tags = record.tags
    if not tags:
        return "{}"
    try:
        key = tuple(tags.items())
        text = _tags_texts.get(key)
    except TypeError:  # a value that cannot be hashed: only a mapping made by hand holds one
        return _TAGS_ENCODER.encode(dict(tags))
    if text is None:
        text = _TAGS_ENCODER.encode(dict(tags))
        # Only text keys and values (what UsageRecord makes of any tags): (1, "a") == (True, "a"), not in JSON.
        if len(text) <= _TAGS_TEXT_CACHED and all(type(k) is str and type(v) is str for k, v in key):
            if len(_tags_texts) >= _TAGS_CACHED:
                _tags_texts.clear()
            _tags_texts[key] = text
    return text


def calls_json(record: UsageRecord) -> str | None:
    """The connector calls as compact JSON with sorted keys; ``None`` when the response named none."""
    calls = record.connector_calls
    return None if calls is None else _TAGS_ENCODER.encode(dict(calls))


def fields(record: UsageRecord) -> dict[str, object]:
    """The record as a flat dict keyed by :data:`FIELDS`; ``tags`` is a plain dict with sorted keys.

    The units beyond the three counts (:data:`~tokenlog.record.UNIT_NAMES`) are there only when the record
    has them (``connector_calls`` as a plain dict with sorted keys): a JSONL line of a chat call stays short.
    """
    found = _fixed_fields(record)
    if has_units(record):
        for name in UNIT_NAMES:
            value = getattr(record, name)
            if value is not None:
                found[name] = dict(sorted(value.items())) if name == "connector_calls" else value
    return found


def _fixed_fields(record: UsageRecord) -> dict[str, object]:
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
