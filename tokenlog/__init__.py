"""tokenlog: record how many LLM tokens a program spends.

>>> import tokenlog
>>> @tokenlog.track_usage                     # one row per successful call
... def ask(client, prompt): ...
>>> with tokenlog.usage_session("nightly") as session:   # totals for a block
...     pass
"""

from __future__ import annotations

from .config import configure
from .errors import SinkError, TokenlogWarning
from .extract import extract_usage
from .instrument import instrument, is_instrumented, uninstrument
from .record import UsageRecord
from .route import SinkStatus, flush, sink_status
from .session import UsageSession, UsageTotals, usage_session
from .sinks import (
    BatchSink,
    BufferedSink,
    CallbackSink,
    CsvSink,
    JsonlSink,
    LoggingSink,
    MemorySink,
    OpenTelemetrySink,
    Sink,
    SqliteSink,
)
from .track import track_usage

__all__ = [
    "BatchSink",
    "BufferedSink",
    "CallbackSink",
    "CsvSink",
    "JsonlSink",
    "LoggingSink",
    "MemorySink",
    "OpenTelemetrySink",
    "Sink",
    "SinkError",
    "SinkStatus",
    "SqliteSink",
    "TokenlogWarning",
    "UsageRecord",
    "UsageSession",
    "UsageTotals",
    "__version__",
    "configure",
    "extract_usage",
    "flush",
    "instrument",
    "is_instrumented",
    "sink_status",
    "track_usage",
    "uninstrument",
    "usage_session",
]

__version__ = "0.1.0"
