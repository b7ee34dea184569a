"""The fields of a record as the text formats write them."""

from __future__ import annotations

import json

from ..record import UsageRecord

__all__ = ["iso_timestamp", "tags_json"]


def iso_timestamp(record: UsageRecord) -> str:
    """ISO 8601 in UTC with microseconds and ``+00:00``, as in the CSV: ``2023-10-27T10:30:00.123456+00:00``."""
    return record.timestamp.isoformat(timespec="microseconds")


def tags_json(record: UsageRecord) -> str:
    """The tags as compact JSON with sorted keys, ASCII only (other characters as ``\\uXXXX`` escapes)."""
    return json.dumps(dict(record.tags), sort_keys=True, separators=(",", ":"))
