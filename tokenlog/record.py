"""UsageRecord: the one row type every sink receives."""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone

__all__ = ["FIELD_NAMES", "UsageRecord"]

_EMPTY_TAGS: Mapping[str, str] = types.MappingProxyType({})

MAX_COUNT = 2**63 - 1
"""The largest token count a record holds: SQLite, OpenTelemetry and most tools store counts in 64 bits."""


def _check_count(name: str, value: object) -> None:
    if type(value) is not int or not 0 <= value <= MAX_COUNT:  # bool is excluded on purpose: True is not a count
        raise ValueError(f"UsageRecord.{name} is {value!r}, expected a non-negative integer below 2**63")


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
        timestamp = self.timestamp
        if timestamp.tzinfo is not timezone.utc:  # the common case (datetime.now(timezone.utc)) skips all this
            offset = timestamp.utcoffset()
            if offset is None:
                raise ValueError("UsageRecord.timestamp is naive, expected an aware datetime in UTC")
            object.__setattr__(self, "timestamp", timestamp.astimezone(timezone.utc))
        if type(self.model) is not str and not isinstance(self.model, str):
            raise ValueError(f"UsageRecord.model is {self.model!r}, expected a string")
        prompt, completion, total = self.prompt_tokens, self.completion_tokens, self.total_tokens
        if not (
            type(prompt) is int
            and type(completion) is int
            and type(total) is int
            and 0 <= prompt <= MAX_COUNT
            and 0 <= completion <= MAX_COUNT
            and 0 <= total <= MAX_COUNT
        ):
            _check_count("prompt_tokens", prompt)
            _check_count("completion_tokens", completion)
            _check_count("total_tokens", total)
        if type(self.tags) is not types.MappingProxyType:
            tags = {str(key): str(value) for key, value in self.tags.items()}
            object.__setattr__(self, "tags", types.MappingProxyType(tags))


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord))
"""The record's fields in order: also the JSONL keys and SQLite columns."""

_new = object.__new__
(
    _set_timestamp,
    _set_model,
    _set_prompt,
    _set_completion,
    _set_total,
    _set_session,
    _set_function,
    _set_latency,
    _set_request_id,
    _set_tags,
) = (UsageRecord.__dict__[name].__set__ for name in FIELD_NAMES)


RecordValues = tuple[
    datetime, str, int, int, int, "str | None", "str | None", "float | None", "str | None", Mapping[str, str]
]
"""A record's fields in order, as :func:`trusted_record` takes them."""


def trusted_record(
    timestamp: datetime,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    total_tokens: int,
    session: str | None,
    function: str | None,
    latency_ms: float | None,
    request_id: str | None,
    tags: Mapping[str, str],
) -> UsageRecord:
    """A record from values tokenlog has already checked, without checking them again.

    For the hot path only: ``timestamp`` is ``datetime.now(timezone.utc)``, the counts come from
    a validated reading, ``tags`` is a read-only mapping of strings. It fills the slots directly,
    which is about twice as fast as the dataclass ``__init__``.
    """
    record: UsageRecord = _new(UsageRecord)
    _set_timestamp(record, timestamp)
    _set_model(record, model)
    _set_prompt(record, prompt_tokens)
    _set_completion(record, completion_tokens)
    _set_total(record, total_tokens)
    _set_session(record, session)
    _set_function(record, function)
    _set_latency(record, latency_ms)
    _set_request_id(record, request_id)
    _set_tags(record, tags)
    return record
