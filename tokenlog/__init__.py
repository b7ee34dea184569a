"""tokenlog: record how many LLM tokens a program spends.

>>> import tokenlog
>>> @tokenlog.track_usage                     # one row per successful call
... def ask(client, prompt): ...
>>> with tokenlog.usage_session("nightly") as session:   # totals for a block
...     pass

The public names load on first use (PEP 562), so ``import tokenlog`` itself costs about a
millisecond; the first use of the decorator or a session loads the rest (see docs/benchmarks.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

if TYPE_CHECKING:  # `X as X`: re-exported names, for type checkers
    from .budget import Budget as Budget
    from .budget import BudgetStatus as BudgetStatus
    from .config import configure as configure
    from .delivery.buffered import BufferedSink as BufferedSink
    from .delivery.guard import SinkStatus as SinkStatus
    from .delivery.guard import sink_status as sink_status
    from .delivery.lifecycle import flush as flush
    from .errors import BudgetExceeded as BudgetExceeded
    from .errors import SinkError as SinkError
    from .errors import TokenlogWarning as TokenlogWarning
    from .extract import extract_usage as extract_usage
    from .instrumentation import instrument as instrument
    from .instrumentation import is_instrumented as is_instrumented
    from .instrumentation import uninstrument as uninstrument
    from .logs.records import read_log as read_log
    from .record import UsageRecord as UsageRecord
    from .session import UsageSession as UsageSession
    from .session import UsageTotals as UsageTotals
    from .session import usage_session as usage_session
    from .sinks import BatchSink as BatchSink
    from .sinks import CallbackSink as CallbackSink
    from .sinks import CsvSink as CsvSink
    from .sinks import JsonlSink as JsonlSink
    from .sinks import LoggingSink as LoggingSink
    from .sinks import MemorySink as MemorySink
    from .sinks import OpenTelemetrySink as OpenTelemetrySink
    from .sinks import Sink as Sink
    from .sinks import SqliteSink as SqliteSink
    from .track import track_usage as track_usage

_EXPORTS: dict[str, str] = {
    "BatchSink": ".sinks",
    "Budget": ".budget",
    "BudgetExceeded": ".errors",
    "BudgetStatus": ".limits",
    "BufferedSink": ".delivery.buffered",
    "CallbackSink": ".sinks",
    "CsvSink": ".sinks",
    "JsonlSink": ".sinks",
    "LoggingSink": ".sinks",
    "MemorySink": ".sinks",
    "OpenTelemetrySink": ".sinks",
    "Sink": ".sinks",
    "SinkError": ".errors",
    "SinkStatus": ".delivery.guard",
    "SqliteSink": ".sinks",
    "TokenlogWarning": ".errors",
    "UsageRecord": ".record",
    "UsageSession": ".session",
    "UsageTotals": ".session",
    "configure": ".config",
    "extract_usage": ".extract",
    "flush": ".delivery.lifecycle",
    "instrument": ".instrumentation",
    "is_instrumented": ".instrumentation",
    "read_log": ".logs.records",
    "sink_status": ".delivery.guard",
    "track_usage": ".track",
    "uninstrument": ".instrumentation",
    "usage_session": ".session",
}
"""Each public name and the module that defines it."""

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use, and keep it here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenlog' has no attribute {name!r}")
    importlib.import_module(".delivery.lifecycle", __name__)  # the one exit handler, with the first name used
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
