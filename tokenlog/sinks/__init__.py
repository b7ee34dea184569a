"""Where records go. A sink is any object with ``write(record)``, ``flush()`` and ``close()``.

Built in: :class:`CsvSink` (the default), :class:`JsonlSink`, :class:`SqliteSink`,
:class:`LoggingSink`, :class:`MemorySink`, :class:`CallbackSink`, :class:`OpenTelemetrySink`
(with ``tokenlog[otel]``), and :class:`BufferedSink` to batch any of them.
:func:`resolve_sink` turns a path or ``scheme://`` string into one; other packages add schemes
through the entry-point group ``tokenlog.sinks``.
"""

from __future__ import annotations

from .base import BatchSink, Sink
from .buffered import BufferedSink
from .callback import CallbackSink
from .csv import CsvSink
from .jsonl import JsonlSink
from .logging import LoggingSink
from .memory import MemorySink
from .otel import OpenTelemetrySink
from .resolve import ENTRY_POINT_GROUP, SinkSpec, resolve_sink
from .sqlite import SqliteSink

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
