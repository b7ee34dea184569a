"""MemorySink: records kept in a list, for tests and notebooks."""

from __future__ import annotations

from collections.abc import Iterable

from .._fork import fork_safe_lock
from ..record import UsageRecord

__all__ = ["MemorySink"]


class MemorySink:
    """Keeps every record it receives in :attr:`records`, in order.

    >>> import tokenlog
    >>> sink = MemorySink()
    >>> with tokenlog.usage_session(sinks=[sink]) as session:
    ...     _ = session.record({"model": "m", "usage": {"prompt_tokens": 2, "completion_tokens": 1}})
    >>> [r.total_tokens for r in sink.records]
    [3]
    """

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []
        self._lock = fork_safe_lock()

    def write(self, record: UsageRecord) -> None:
        """Append ``record``."""
        with self._lock:
            self.records.append(record)

    def write_many(self, records: Iterable[UsageRecord]) -> None:
        """Append ``records`` in order."""
        with self._lock:
            self.records.extend(records)

    def flush(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to close; the records stay."""

    def __repr__(self) -> str:
        return f"MemorySink({len(self.records)} records)"
