"""CallbackSink: hand every record to a function of yours."""

from __future__ import annotations

import inspect
from collections.abc import Callable

from ..record import UsageRecord

__all__ = ["CallbackSink"]


class CallbackSink:
    """Calls ``fn(record)`` for every record, in the thread that made it.

    If ``fn`` raises, tokenlog treats it like any failing sink: the call it records is not
    affected, the record is kept and ``fn`` is called with it again later.

    >>> import tokenlog
    >>> seen = []
    >>> with tokenlog.usage_session(sinks=[CallbackSink(seen.append)]) as s:
    ...     _ = s.record({"model": "m", "usage": {"prompt_tokens": 2, "completion_tokens": 1}})
    >>> [r.total_tokens for r in seen]
    [3]
    """

    def __init__(self, fn: Callable[[UsageRecord], object]) -> None:
        if not callable(fn):
            raise TypeError(f"CallbackSink needs a function to call with each record, not {fn!r}")
        if inspect.iscoroutinefunction(fn):
            raise TypeError(
                f"CallbackSink got the async function {fn!r}; it calls fn(record) synchronously, "
                "so pass a plain function (it may schedule work on your event loop)"
            )
        self.fn = fn

    def __repr__(self) -> str:
        return f"CallbackSink({self.fn!r})"

    def write(self, record: UsageRecord) -> None:
        """Call ``fn(record)``."""
        self.fn(record)

    def flush(self) -> None:
        """Nothing to flush."""

    def close(self) -> None:
        """Nothing to close."""
