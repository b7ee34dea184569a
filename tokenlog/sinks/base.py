"""The Sink protocol: where records go."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from ..record import UsageRecord

__all__ = ["BatchSink", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """Anything with ``write``, ``flush`` and ``close`` can receive records.

    ``write`` may raise: tokenlog keeps the record and retries later, and your call never sees
    the error (unless you asked for strict mode). A sink owns its resources and its locking;
    it may be called from several threads at once. Add ``write_many`` (:class:`BatchSink`) to
    take kept rows and :class:`~tokenlog.BufferedSink` batches in one go.

    >>> class PrintSink:
    ...     def write(self, record: UsageRecord) -> None:
    ...         print(record.model, record.total_tokens)
    ...     def flush(self) -> None: ...
    ...     def close(self) -> None: ...
    >>> isinstance(PrintSink(), Sink)
    True
    """

    def write(self, record: UsageRecord) -> None:
        """Store one record durably enough for this sink, or raise."""

    def flush(self) -> None:
        """Push out anything buffered."""

    def close(self) -> None:
        """Release files and connections; a later ``write`` may reopen them."""


@runtime_checkable
class BatchSink(Sink, Protocol):
    """A sink that can also store several records in one go (kept rows, buffered batches)."""

    def write_many(self, records: Iterable[UsageRecord]) -> None:
        """Store all ``records`` in order, or none of them, or raise."""
