"""Turn a response into one UsageRecord and hand it to the right sinks, isolating their failures.

Which sinks get a record: the call's own (``track_usage(sinks=...)``), else those of the
innermost open session that has any (``usage_session(sinks=...)``), else the process defaults
(``configure(sinks=...)``, by default the CSV file). Every open session counts the record.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import tempfile
import threading
import time
import types
import warnings
import weakref
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from . import config
from ._context import open_sessions
from .errors import SinkError, TokenlogWarning
from .extract import read_usage
from .record import _EMPTY_TAGS, UsageRecord, trusted_record
from .sinks.base import Sink

if TYPE_CHECKING:
    from .session import UsageSession

__all__ = ["GuardedSink", "flush", "guard", "record_response"]

log = logging.getLogger("tokenlog")

MAX_PENDING = 100_000
"""Rows kept per failing sink; past this the oldest are dropped and counted as lost, loudly."""


def record_response(
    obj: object,
    *,
    model: str | None = None,
    function: str | None = None,
    latency_ms: float | None = None,
    tags: Mapping[str, str] | None = None,
    sinks: tuple[GuardedSink, ...] | None = None,
    sessions: tuple[UsageSession, ...] | None = None,
) -> UsageRecord | None:
    """Record the usage in ``obj`` once; return the record (an earlier one for a seen response)."""
    if not config.settings.enabled:
        return None
    reading = read_usage(obj)
    if reading is None:
        return None
    stack = open_sessions.get() if sessions is None else sessions
    name = reading.model or model or "unknown"
    record = trusted_record(  # every value below is checked already: skip the dataclass checks
        datetime.now(timezone.utc),
        name if type(name) is str else str(name),
        reading.prompt_tokens,
        reading.completion_tokens,
        reading.total_tokens,
        stack[-1].name if stack else None,
        function,
        latency_ms,
        reading.request_id,
        _merge_tags(stack, tags),
    )
    earlier = _recorded.add(reading.anchor, record)
    if earlier is not None:
        return earlier
    for session in stack:
        session._add(record)
    for sink in _destinations(sinks, stack):
        sink.write(record)
    return record


def note_missing_usage(sessions: tuple[UsageSession, ...] | None = None) -> None:
    """Count a call that returned no usage in every open session (or in ``sessions``)."""
    for session in open_sessions.get() if sessions is None else sessions:
        session._add_missing()


def _destinations(sinks: tuple[GuardedSink, ...] | None, stack: tuple[UsageSession, ...]) -> tuple[GuardedSink, ...]:
    if sinks is not None:
        return sinks
    for session in reversed(stack):
        if session._sinks is not None:
            return session._sinks
    return config.default_sinks()


def _merge_tags(stack: tuple[UsageSession, ...], tags: Mapping[str, str] | None) -> Mapping[str, str]:
    """The record's tags, read-only: the sessions' (outermost first), then the call's."""
    if not any(session.tags for session in stack):
        if not tags:
            return _EMPTY_TAGS
        if type(tags) is types.MappingProxyType:
            return tags
    merged: dict[str, str] = {}
    for session in stack:
        merged.update(session.tags)
    if tags:
        merged.update({str(key): str(value) for key, value in tags.items()})
    return types.MappingProxyType(merged)


class _RecordedResponses:
    """Which responses were recorded already, by identity, so each is recorded once.

    The last ``capacity`` responses are remembered, oldest forgotten first. Objects that allow
    weak references are held weakly (an entry whose object died never matches again, even if
    its ``id`` is reused); others (a ``dict``'s usage) are held strongly, so their ``id`` cannot
    be reused while they are remembered.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._entries: dict[int, tuple[object, UsageRecord]] = {}
        self._weak: dict[type, bool] = {}  # per type: does it take weak references?
        self._lock = threading.Lock()

    def add(self, anchor: object, record: UsageRecord) -> UsageRecord | None:
        """Remember ``anchor``; if it was already recorded, return that earlier record instead."""
        key = id(anchor)
        kind = type(anchor)
        weak = self._weak.get(kind)
        if weak is None:
            weak = self._weak[kind] = kind.__weakrefoffset__ != 0
        held = weakref.ref(anchor) if weak else anchor
        entries = self._entries
        with self._lock:
            entry = entries.get(key)
            if entry is not None:
                earlier = entry[0]
                if (earlier() if type(earlier) is weakref.ref else earlier) is anchor:
                    return entry[1]
                del entries[key]  # a dead object's id, reused: forget the old entry
            entries[key] = (held, record)
            if len(entries) > self._capacity:
                del entries[next(iter(entries))]
        return None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_recorded = _RecordedResponses()


class GuardedSink:
    """A sink plus what keeps its failures away from the caller: a retry buffer and a warning.

    One guard exists per sink object, so that every route to a sink shares its order.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.pending: deque[UsageRecord] = deque()
        self.lost = 0
        self._failures = 0
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GuardedSink({self.sink!r}, pending={len(self.pending)}, lost={self.lost})"

    def write(self, record: UsageRecord) -> None:
        """Write ``record``, or keep it (in order) for a later retry; raise only in strict mode."""
        with self._lock:
            if self.pending and not self._retry(force=False):
                self._keep(record)
                return
            try:
                self.sink.write(record)
            except Exception as exc:
                if config.settings.on_error == "raise":
                    raise _as_sink_error(self.sink, exc) from exc
                self._failed(exc)
                self._keep(record)

    def retry(self) -> bool:
        """Try to write the pending rows now; True if none are left."""
        with self._lock:
            return self._retry(force=True)

    def _retry(self, *, force: bool) -> bool:
        if not self.pending:
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        count = len(self.pending)
        try:
            write_many = getattr(self.sink, "write_many", None)
            if write_many is not None:
                write_many(list(self.pending))
                self.pending.clear()
            else:
                while self.pending:
                    self.sink.write(self.pending[0])
                    self.pending.popleft()
        except Exception as exc:
            self._failed(exc)
            return False
        self._failures = 0
        _failing.discard(self)
        log.info("tokenlog: %r works again; wrote %d pending rows", self.sink, count)
        return True

    def _failed(self, exc: BaseException) -> None:
        if self._failures == 0:
            warnings.warn(
                f"{_as_sink_error(self.sink, exc)}; tokenlog keeps the rows and retries (your call is unaffected)",
                TokenlogWarning,
                stacklevel=5,
            )
            log.warning("tokenlog: %r failed: %s", self.sink, exc)
        self._failures += 1
        self._retry_at = time.monotonic() + min(30.0, 0.05 * 2 ** min(self._failures, 10))
        _failing.add(self)

    def _keep(self, record: UsageRecord) -> None:
        if len(self.pending) >= MAX_PENDING:
            self.pending.popleft()
            self.lost += 1
            if self.lost == 1 or self.lost % 10_000 == 0:
                message = f"{self.sink!r} has failed for {MAX_PENDING} rows; {self.lost} rows lost so far"
                warnings.warn(message, TokenlogWarning, stacklevel=5)
                log.error("tokenlog: %s", message)
        self.pending.append(record)

    def _after_fork_in_child(self) -> None:
        # The parent still owns its pending rows; a child that wrote them too would duplicate them.
        self._lock = threading.Lock()
        self.pending.clear()


def _as_sink_error(sink: object, exc: BaseException) -> SinkError:
    return exc if isinstance(exc, SinkError) else SinkError(f"{sink!r} failed: {exc!r}")


_guards: weakref.WeakValueDictionary[int, GuardedSink] = weakref.WeakValueDictionary()
_guards_lock = threading.Lock()
_failing: set[GuardedSink] = set()  # held strongly until their rows are written


def guard(sink: Sink) -> GuardedSink:
    """The one guard of ``sink`` (created on first use)."""
    if isinstance(sink, GuardedSink):
        return sink
    if not (callable(getattr(sink, "write", None))):
        raise TypeError(f"{sink!r} is not a sink: it has no write(record) method")
    with _guards_lock:
        existing = _guards.get(id(sink))
        if existing is not None and existing.sink is sink:
            return existing
        created = GuardedSink(sink)
        _guards[id(sink)] = created
        return created


def guard_all(sinks: Iterable[Sink]) -> tuple[GuardedSink, ...]:
    """Guards for several sinks, in order."""
    return tuple(guard(sink) for sink in sinks)


def _write_fallback(pending: list[GuardedSink]) -> None:
    """At exit, rows that still could not be written go to a file in the temp directory."""
    from .sinks.csv import CsvSink

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = os.path.join(tempfile.gettempdir(), f"tokenlog-unwritten-{os.getpid()}-{stamp}.csv")
    rows = [record for guarded in pending for record in guarded.pending]
    targets = ", ".join(repr(guarded.sink) for guarded in pending)
    try:
        CsvSink(path, extra_fields=("Session", "Function", "LatencyMs", "RequestId", "Tags")).write_many(rows)
        where = f"they are in {path}"
    except Exception as exc:
        from .sinks.csv import format_row

        sys.stderr.writelines(format_row(record) for record in rows)
        where = f"writing them to {path} failed too ({exc}), so they were printed to stderr"
    message = f"tokenlog: {len(rows)} rows could not be written to {targets} before exit; {where}"
    warnings.warn(message, TokenlogWarning, stacklevel=1)
    log.error("%s", message)


def flush() -> None:
    """Write now what failing sinks are holding back, and flush the default sinks.

    tokenlog retries on its own (with each new record, and at exit); call this when you know
    the cause is gone (space freed, lock released) or before you read the log yourself.
    Returns nothing; rows that still cannot be written stay pending.
    """
    for guarded in list(_failing):
        guarded.retry()
    for guarded in config.created_default_sinks():
        try:
            guarded.sink.flush()
        except Exception as exc:
            log.warning("tokenlog: flushing %r failed: %s", guarded.sink, exc)


@atexit.register
def _at_exit() -> None:
    flush()
    still = [guarded for guarded in _failing if guarded.pending]
    if still:
        _write_fallback(still)
        for guarded in still:
            guarded.pending.clear()
        _failing.clear()


def _reset_after_fork() -> None:
    for guarded in list(_guards.values()):
        guarded._after_fork_in_child()
    _failing.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
