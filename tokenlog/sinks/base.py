"""The Sink protocol: where records go."""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from ..record import UsageRecord

__all__ = ["BatchSink", "Sink", "flush_at_exit", "sinks_to_flush"]


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


_to_flush: weakref.WeakSet[Sink] = weakref.WeakSet()


def flush_at_exit(sink: Sink) -> None:
    """Have ``tokenlog.flush()`` and the end of the program flush ``sink`` even if it is used directly.

    Sinks that tokenlog routes records to are flushed anyway; a sink that may hold something back
    when it is written to by hand (``CsvSink`` keeps the rows of the last 50 ms until it has seen
    that its file was not deleted) registers here. It is held weakly.
    """
    _to_flush.add(sink)


def sinks_to_flush() -> list[Sink]:
    """The sinks registered with :func:`flush_at_exit` that still exist."""
    return list(_to_flush)
