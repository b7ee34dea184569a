"""UsageRecord: the one row type every sink receives."""

from __future__ import annotations

import sys
import types
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

__all__ = ["FIELD_NAMES", "UNIT_NAMES", "BilledUnits", "UsageRecord", "are_counts", "has_units"]

EMPTY_TAGS: Mapping[str, str] = types.MappingProxyType({})

MAX_COUNT = 2**63 - 1
"""The largest token count a record holds: SQLite, OpenTelemetry and most tools store counts in 64 bits."""


def are_counts(prompt: object, completion: object, total: object) -> bool:
    """True if all three are token counts: ints (a bool is not a count) from 0 to :data:`MAX_COUNT`."""
    return (
        type(prompt) is int
        and type(completion) is int
        and type(total) is int
        and 0 <= prompt <= MAX_COUNT
        and 0 <= completion <= MAX_COUNT
        and 0 <= total <= MAX_COUNT
    )


def _check_count(name: str, value: object) -> None:
    if not are_counts(value, 0, 0):
        raise ValueError(f"UsageRecord.{name} is {value!r}, expected a non-negative integer below 2**63")


def _check_units(record: UsageRecord) -> None:
    """Check the optional units of a record that has any (``None`` is always allowed)."""
    for name in ("cached_tokens", "reasoning_tokens", "connector_tokens", "pages"):
        value = getattr(record, name)
        if value is not None:
            _check_count(name, value)
    for name in ("audio_seconds", "cost_usd"):
        value = getattr(record, name)
        if value is not None and (type(value) not in (int, float) or not 0 <= value < float("inf")):
            raise ValueError(f"UsageRecord.{name} is {value!r}, expected a non-negative finite number")
    if record.service_tier is not None and not isinstance(record.service_tier, str):
        raise ValueError(f"UsageRecord.service_tier is {record.service_tier!r}, expected a string")
    calls = record.connector_calls
    if calls is not None:
        if not isinstance(calls, Mapping):
            raise ValueError(f"UsageRecord.connector_calls is {calls!r}, expected a mapping of name to count")
        checked = {str(name): count for name, count in calls.items()}
        for name, count in checked.items():
            _check_count(f"connector_calls[{name!r}]", count)
        object.__setattr__(record, "connector_calls", types.MappingProxyType(checked))


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
    tags: Mapping[str, str] = field(default_factory=lambda: EMPTY_TAGS, hash=False)
    # Units beyond the three counts, each None when the response does not say (see UNIT_NAMES).
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    audio_seconds: float | None = None
    connector_tokens: int | None = None
    connector_calls: Mapping[str, int] | None = field(default=None, hash=False)
    pages: int | None = None
    service_tier: str | None = None
    cost_usd: float | None = None

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
        if not are_counts(prompt, completion, total):
            _check_count("prompt_tokens", prompt)
            _check_count("completion_tokens", completion)
            _check_count("total_tokens", total)
        if type(self.tags) is not types.MappingProxyType:
            tags = {str(key): str(value) for key, value in self.tags.items()}
            object.__setattr__(self, "tags", types.MappingProxyType(tags))
        if has_units(self):
            _check_units(self)


def has_units(record: UsageRecord) -> bool:
    """True if ``record`` has any of the units beyond the three counts (:data:`UNIT_NAMES`)."""
    return not (
        record.cached_tokens is None
        and record.reasoning_tokens is None
        and record.audio_seconds is None
        and record.connector_tokens is None
        and record.connector_calls is None
        and record.pages is None
        and record.service_tier is None
        and record.cost_usd is None
    )


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord))
"""The record's fields in order: also the JSONL keys and SQLite columns."""

UNIT_NAMES: tuple[str, ...] = FIELD_NAMES[FIELD_NAMES.index("cached_tokens") :]
"""The optional units a response may carry beyond the three counts, in record order:

- ``cached_tokens``: prompt tokens read from the prompt cache (part of ``prompt_tokens``, billed at the cached rate);
- ``reasoning_tokens``: completion tokens spent thinking (part of ``completion_tokens``);
- ``audio_seconds``: seconds of audio in the prompt (a transcription);
- ``connector_tokens``: tokens a connector (web search, ...) added to the input (part of ``prompt_tokens``);
- ``connector_calls``: how many times each connector ran, by name;
- ``pages``: pages processed (OCR), for calls billed by the page;
- ``service_tier``: the tier the call was served in, as the response names it;
- ``cost_usd``: the call's cost, when it was priced at record time.
"""


@dataclass
class BilledUnits:
    """What calls spent beyond their prompt and completion tokens, added up, for pricing them."""

    cached_tokens: int = 0
    """Prompt tokens read from the cache (part of the prompt tokens, billed at the cached rate)."""
    pages: int = 0
    audio_seconds: float = 0.0
    connector_calls: dict[str, int] = field(default_factory=dict)
    batch_prompt_tokens: int = 0
    """Prompt tokens of calls served by the batch API (``service_tier`` ``batch``), part of the prompt tokens."""
    batch_completion_tokens: int = 0
    """Their completion tokens, part of the completion tokens."""
    recorded_calls: int = 0
    """How many of the calls came with the cost they were priced at when recorded (a log's ``CostUSD``)."""
    recorded_cost: float = 0.0
    """The sum of those costs."""

    def add(
        self,
        cached_tokens: int | None,
        pages: int | None,
        audio_seconds: float | None,
        connector_calls: Mapping[str, int] | None,
        batch: tuple[int, int] | None = None,
    ) -> None:
        """Add one call's units (``None``: the call did not say); ``batch``: its prompt and completion tokens, if
        the batch API served it."""
        if batch is not None:
            self.batch_prompt_tokens += batch[0]
            self.batch_completion_tokens += batch[1]
        self.cached_tokens += cached_tokens or 0
        self.pages += pages or 0
        self.audio_seconds += audio_seconds or 0.0
        for name, count in (connector_calls or {}).items():
            self.connector_calls[name] = self.connector_calls.get(name, 0) + count

    @classmethod
    def of(cls, units: Mapping[str, object] | None, prompt: int, completion: int) -> BilledUnits:
        """The billed units of one call from its units by name (as a route reads them), with its tokens."""
        billed = cls()
        if units:
            billed.add(
                units.get("cached_tokens"),  # type: ignore[arg-type]
                units.get("pages"),  # type: ignore[arg-type]
                units.get("audio_seconds"),  # type: ignore[arg-type]
                units.get("connector_calls"),  # type: ignore[arg-type]
                (prompt, completion) if units.get("service_tier") == "batch" else None,
            )
        return billed

    def add_record(self, record: UsageRecord) -> None:
        """Add the units of one record (a call the batch API served adds its tokens as batch tokens)."""
        batch = (record.prompt_tokens, record.completion_tokens) if record.service_tier == "batch" else None
        self.add(record.cached_tokens, record.pages, record.audio_seconds, record.connector_calls, batch)


class _Blank:
    """A record being filled: the same slots as UsageRecord, but writable. :func:`trusted_record`
    fills one and then makes it a UsageRecord (``__class__`` assignment, allowed between classes of
    one memory layout): 0.16 us, where ten calls of the slots' ``__set__`` took 0.41 us."""

    __slots__ = UsageRecord.__slots__

    timestamp: datetime
    model: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    session: str | None
    function: str | None
    latency_ms: float | None
    request_id: str | None
    tags: Mapping[str, str]
    cached_tokens: int | None
    reasoning_tokens: int | None
    audio_seconds: float | None
    connector_tokens: int | None
    connector_calls: Mapping[str, int] | None
    pages: int | None
    service_tier: str | None
    cost_usd: float | None


Units = Mapping[str, object]
"""Some of a record's :data:`UNIT_NAMES` and their values (already checked), for :func:`trusted_record`."""

RecordValues = tuple[
    datetime, str, int, int, int, "str | None", "str | None", "float | None", "str | None", Mapping[str, str]
]
"""A record's fixed fields in order, as :func:`trusted_record` takes them (then its units, if any): what a
sink's ``write_fields`` gets for a row without units."""


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
    units: Units | None = None,
) -> UsageRecord:
    """A record from values tokenlog has already checked, without checking them again.

    For the hot path only: ``timestamp`` is ``datetime.now(timezone.utc)``, the counts come from
    a validated reading, ``tags`` is a read-only mapping of strings. It fills the slots of a
    :class:`_Blank`, which is five times as fast as the dataclass ``__init__``.
    """
    record = _Blank()
    record.timestamp = timestamp
    record.model = model
    record.prompt_tokens = prompt_tokens
    record.completion_tokens = completion_tokens
    record.total_tokens = total_tokens
    record.session = session
    record.function = function
    record.latency_ms = latency_ms
    record.request_id = request_id
    record.tags = tags
    record.cached_tokens = record.reasoning_tokens = record.audio_seconds = record.connector_tokens = None
    record.connector_calls = record.pages = record.service_tier = record.cost_usd = None
    if units:
        for name, value in units.items():
            setattr(record, name, value)
    record.__class__ = UsageRecord  # type: ignore[assignment]
    return record  # type: ignore[return-value]


def _checked_record(*values: Any) -> UsageRecord:
    """:func:`trusted_record` (the same arguments) through the checked ``__init__``."""
    fixed = len(FIELD_NAMES) - len(UNIT_NAMES)
    units = values[fixed] if len(values) > fixed else None
    return UsageRecord(*values[:fixed], **(units or {}))


if not getattr(sys, "_is_gil_enabled", lambda: True)():
    # A free-threaded build stops every thread to assign __class__: the checked __init__ there.
    trusted_record = _checked_record  # type: ignore[assignment]
