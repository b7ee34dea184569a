"""UsageRecord: the one row type every sink receives."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

__all__ = ["UsageRecord"]

_EMPTY_TAGS: Mapping[str, str] = types.MappingProxyType({})
_ZERO = timedelta(0)


def _check_count(name: str, value: object) -> None:
    if type(value) is not int or value < 0:  # bool is excluded on purpose: True is not a count
        raise ValueError(f"UsageRecord.{name} is {value!r}, expected a non-negative integer")


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """The tokens one successful call spent, with the context it was made in.

    ``timestamp`` is an aware datetime in UTC (another offset is converted to UTC, a naive one
    is refused). The counts are non-negative integers. Records are immutable and hashable.

    >>> from datetime import datetime, timezone
    >>> r = UsageRecord(datetime(2023, 10, 27, 10, 30, tzinfo=timezone.utc), "mistral-small", 12, 5, 17)
    >>> r.total_tokens
    17
    """

    timestamp: datetime
    model: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    session: str | None = None
    function: str | None = None
    latency_ms: float | None = None
    request_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY_TAGS, hash=False)

    def __post_init__(self) -> None:
        offset = self.timestamp.utcoffset()
        if offset is None:
            raise ValueError("UsageRecord.timestamp is naive, expected an aware datetime in UTC")
        if offset != _ZERO or self.timestamp.tzinfo is not timezone.utc:
            object.__setattr__(self, "timestamp", self.timestamp.astimezone(timezone.utc))
        if not isinstance(self.model, str):
            raise ValueError(f"UsageRecord.model is {self.model!r}, expected a string")
        _check_count("prompt_tokens", self.prompt_tokens)
        _check_count("completion_tokens", self.completion_tokens)
        _check_count("total_tokens", self.total_tokens)
        if not isinstance(self.tags, types.MappingProxyType):
            tags = {str(key): str(value) for key, value in self.tags.items()}
            object.__setattr__(self, "tags", types.MappingProxyType(tags))
