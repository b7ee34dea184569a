"""Where records go. A sink is any object with ``write(record)``, ``flush()`` and ``close()``.

Built in: :class:`CsvSink` (the default), :class:`JsonlSink`, :class:`SqliteSink`,
:class:`LoggingSink`, :class:`MemorySink`, :class:`CallbackSink`, :class:`OpenTelemetrySink`
(with ``tokenlog[otel]``); :class:`~tokenlog.BufferedSink` (which lives with delivery, in
:mod:`tokenlog.delivery.buffered`, and is named here too) batches any of them.
:func:`resolve_sink` turns a path or ``scheme://`` string into one; other packages add schemes
through the entry-point group ``tokenlog.sinks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import BatchSink, Sink
from .callback import CallbackSink
from .csv import CsvSink
from .jsonl import JsonlSink
from .logging import LoggingSink
from .memory import MemorySink
from .otel import OpenTelemetrySink
from .resolve import ENTRY_POINT_GROUP, SinkSpec, resolve_sink
from .sqlite import SqliteSink

if TYPE_CHECKING:
    from ..delivery.buffered import BufferedSink

__all__ = [
    "ENTRY_POINT_GROUP",
    "BatchSink",
    "BufferedSink",
    "CallbackSink",
    "CsvSink",
    "JsonlSink",
    "LoggingSink",
    "MemorySink",
    "OpenTelemetrySink",
    "Sink",
    "SinkSpec",
    "SqliteSink",
    "resolve_sink",
]


def __getattr__(name: str) -> Any:
    """``tokenlog.sinks.BufferedSink``, where it was before it moved to the delivery layer (loaded on use)."""
    if name == "BufferedSink":
        from ..delivery.buffered import BufferedSink

        return BufferedSink
    raise AttributeError(f"module 'tokenlog.sinks' has no attribute {name!r}")
