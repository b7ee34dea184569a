"""Turn a response into one UsageRecord and hand it to the right sinks, isolating their failures.

Which sinks get a record: the call's own (``track_usage(sinks=...)``), else those of the
innermost open session that has any (``usage_session(sinks=...)``), else the process defaults
(``configure(sinks=...)``, by default the CSV file). Every open session counts the record.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import types
import warnings
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from time import perf_counter
from typing import TYPE_CHECKING

from . import config
from ._context import open_sessions
from ._fork import fork_safe_lock, reset_after_fork
from .errors import SinkError, TokenlogWarning
from .extract import _OBJECT, _kind, _kinds, read_usage
from .record import _EMPTY_TAGS, MAX_COUNT, RecordValues, UsageRecord, trusted_record
from .sinks.base import Sink
from .sinks.buffered import flush_buffers
from .sinks.csv import CsvSink, csv_sinks, write_fallback

if TYPE_CHECKING:
    from .session import UsageSession

__all__ = ["GuardedSink", "SinkStatus", "flush", "guard", "record_response", "sink_status"]

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
    return record(obj, model, function, latency_ms, tags, sinks, sessions)


def record(
    obj: object,
    model: str | None,
    function: str | None,
    latency_ms: float | None,
    tags: Mapping[str, str] | None,
    sinks: tuple[GuardedSink, ...] | None,
    sessions: tuple[UsageSession, ...] | None,
) -> UsageRecord | None:
    """:func:`record_response` with positional arguments, for the decorator's hot path."""
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
        return earlier  # recorded already: no second row
    for session in stack:
        session._add(record)
    captures = _captures
    if captures:
        for capture in captures:
            capture.records.append(record)
        if not all(capture.write for capture in captures):
            return record
    _deliver(_destinations(sinks, stack), record)
    return record


_now = datetime.now
_UTC = timezone.utc


def record_plain(
    response: object, function: str, started: float, tags: Mapping[str, str], sinks: tuple[GuardedSink, ...] | None
) -> bool:
    """:func:`record` for the decorator's common case, written out; True if it recorded ``response``.

    The common case: an SDK response object (not a mapping, sequence or stream: the caller
    checks its type) whose ``usage`` has valid counts and which names its model, outside any
    ``capture_usage`` block. Anything else returns False having done nothing, and the caller
    takes the general path. ``tags`` are the call's own, read-only. Outside sessions, a plain
    CsvSink (the default) gets the row's values and no record is built. Measured with the harness
    of docs/benchmarks.md: the decorator adds 1.8 us a call with this path, 2.9 us without it.
    """
    try:
        usage = response.usage  # type: ignore[attr-defined]
        if (_kinds.get(type(usage)) or _kind(type(usage))) != _OBJECT:
            return False
        prompt = usage.prompt_tokens
        completion = usage.completion_tokens
        total = usage.total_tokens
        model = response.model  # type: ignore[attr-defined]
        request_id = response.id  # type: ignore[attr-defined]
    except Exception:  # a missing or raising attribute: the general path reads field by field, and says why
        return False
    if not (  # extract._valid_counts and a named model, written out (a call and a tuple less: 0.05 us)
        type(prompt) is int
        and type(completion) is int
        and type(total) is int
        and prompt >= 0
        and completion >= 0
        and total == prompt + completion
        and total <= MAX_COUNT
        and type(model) is str
        and model
    ):
        return False
    if _captures:
        return False  # capture_usage sees every record, and may keep it from the sinks: the general path
    if _recorded.remember(usage) is not None:
        return True  # recorded already (by an inner decorated function, say)
    stack = open_sessions.get()
    now = _now(_UTC)
    latency_ms = (perf_counter() - started) * 1000.0
    if type(request_id) is not str or not request_id:
        request_id = None
    destinations = _destinations(sinks, stack)
    if stack:
        name, merged = stack[-1].name, _merge_tags(stack, tags)
        record = trusted_record(now, model, prompt, completion, total, name, function, latency_ms, request_id, merged)
        for session in stack:
            session._add(record)
    elif len(destinations) == 1 and destinations[0].values_writer is not None:
        # The default route: the CSV file gets the row without a record being built (unless it needs one).
        destinations[0].write_values(
            (now, model, prompt, completion, total, None, function, latency_ms, request_id, tags)
        )
        return True
    else:
        record = trusted_record(now, model, prompt, completion, total, None, function, latency_ms, request_id, tags)
    _deliver(destinations, record)
    return True


def _deliver(destinations: tuple[GuardedSink, ...], record: UsageRecord) -> None:
    """Write ``record`` to every sink; in strict mode raise the first failure after trying them all."""
    if len(destinations) == 1:
        destinations[0].write(record)
        return
    errors: list[Exception] = []
    for sink in destinations:
        try:
            sink.write(record)
        except Exception as exc:  # strict mode: the other sinks still get the record
            errors.append(exc)
    if errors:
        raise errors[0]


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
    if not stack or not any(session.tags for session in stack):
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


_Entry = tuple[object, "UsageRecord | None"]
"""(the object or a weak reference to it, its record if kept)"""


class _RecordedResponses:
    """Which responses were recorded already, by identity, so each is recorded once.

    At least the last ``capacity`` responses are remembered (at most twice that): entries go to
    a current table; when it is full, it becomes the previous one and the one before is
    forgotten whole. An entry holds a weak reference to its object where the type allows one
    (an entry whose object died never matches again, even if its ``id`` is reused), else the
    object itself (a ``dict``'s usage), so that its ``id`` cannot be reused while remembered.
    The general path keeps each record with its entry (:meth:`add`), to return it for a
    duplicate; the decorator's path keeps none (:meth:`remember` alone): holding a record per
    call measured 0.3 us a call in allocations and deferred frees. A freed response's id is
    often reused by the next one: its entry, found dead, is replaced in the same lookup.

    No lock: ``dict.setdefault`` is atomic, so of two threads adding the same object at once
    exactly one wins. Measured: the locked OrderedDict this replaced was a quarter of the
    decorator's own time.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._current: dict[int, _Entry] = {}
        self._previous: dict[int, _Entry] = {}

    def add(self, anchor: object, record: UsageRecord) -> UsageRecord | None:
        """Remember ``anchor`` with its record; ``None`` if it is new, else the record made when it was
        first recorded (``record`` itself if the hot path recorded it: that path keeps no record)."""
        earlier = self.remember(anchor, record)
        if earlier is None:
            return None
        return record if earlier[1] is None else earlier[1]

    def remember(self, anchor: object, record: UsageRecord | None = None) -> _Entry | None:
        """Remember ``anchor`` (with ``record``, if given); ``None`` if it is new, else the entry it was
        remembered with. The decorator's path keeps no record."""
        key = id(anchor)
        entry = (weakref.ref(anchor) if type(anchor).__weakrefoffset__ else anchor, record)
        current = self._current
        prior = current.setdefault(key, entry)
        if prior is entry:
            older = self._previous.get(key)
            if older is None:  # the common case: a response not seen before
                if len(current) >= self._capacity:
                    self._previous, self._current = current, {}
                return None
            prior = older
        held = prior[0]
        if (held() if type(held) is weakref.ref else held) is anchor:
            current[key] = prior  # seen before: the earlier entry stays the one remembered
            return prior
        current[key] = entry  # a dead object's id, reused: this entry replaces its old one
        return None

    def clear(self) -> None:
        self._current, self._previous = {}, {}


_recorded = _RecordedResponses()


class GuardedSink:
    """A sink plus what keeps its failures away from the caller: a retry buffer and a warning.

    One guard exists per sink object, so that every route to a sink shares its order.
    ``pending`` holds the rows kept while the sink fails (oldest first), ``lost`` counts those
    dropped past :data:`MAX_PENDING`; :func:`sink_status` reports both for every sink.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.values_writer = sink.write_values if type(sink) is CsvSink else None
        """The sink's ``write_values`` if it writes a row from a record's values alone (a CsvSink, not a
        subclass, which may write otherwise): :meth:`write_values` then builds no record."""
        self.pending: deque[UsageRecord] = deque()
        self.lost = 0
        self.last_error: str | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._lock = threading.Lock()
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"GuardedSink({self.sink!r}, pending={len(self.pending)}, lost={self.lost})"

    def write(self, record: UsageRecord) -> None:
        """Write ``record``, or keep it (in order) for a later retry; raise only in strict mode."""
        if not self.pending:  # the common case, without the lock: sinks take writes from several threads at once
            try:
                self.sink.write(record)
            except Exception as exc:
                self.refused(record, exc)
            return
        self.write_many((record,))

    def write_values(self, values: RecordValues) -> None:
        """:meth:`write` of ``trusted_record(*values)``, building the record only if the sink needs one."""
        write_values = self.values_writer
        if write_values is not None and not self.pending:
            try:
                if write_values(values):
                    return
            except Exception as exc:
                self.refused(trusted_record(*values), exc)
                return
        self.write(trusted_record(*values))

    def refused(self, record: UsageRecord, exc: Exception) -> None:
        """The sink raised ``exc`` writing ``record``: keep it for a retry, or raise in strict mode."""
        with self._lock:
            if config.settings.on_error == "raise":
                raise _as_sink_error(self.sink, exc) from exc
            self._keep((record,))  # before warning: a warnings filter set to "error" must not lose it
            self._failed(exc)

    def write_many(self, records: Sequence[UsageRecord], *, strict: bool | None = None) -> None:
        """Write ``records`` in order after any kept ones, or keep them for a later retry.

        ``strict`` (default: strict mode is on) raises :class:`~tokenlog.SinkError` instead of
        keeping rows the sink refused.
        """
        if strict is None:
            strict = config.settings.on_error == "raise"
        with self._lock:
            if self.pending and not self._retry(force=False):
                self._keep(records)
                return
            rows = deque(records)
            try:
                _write_in_order(self.sink, rows)
            except Exception as exc:
                if strict:
                    raise _as_sink_error(self.sink, exc) from exc
                self._keep(rows)  # before warning: a warnings filter set to "error" must not lose them
                self._failed(exc)

    def retry(self) -> bool:
        """Try to write the pending rows now; True if none are left."""
        with self._lock:
            return self._retry(force=True)

    def status(self) -> SinkStatus:
        """How this sink is doing: rows pending, rows lost, whether it is failing now."""
        with self._lock:
            return SinkStatus(self.sink, len(self.pending), self.lost, self._failures > 0, self.last_error)

    def _retry_if_due(self) -> None:
        with self._lock:
            self._retry(force=False)

    def _retry(self, *, force: bool) -> bool:
        if not self.pending:
            self._recovered(0)
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        count = len(self.pending)
        try:
            _write_in_order(self.sink, self.pending)
        except Exception as exc:
            self._failed(exc)
            return False
        self._recovered(count)
        return True

    def _failed(self, exc: BaseException) -> None:
        self.last_error = str(_as_sink_error(self.sink, exc))
        self._failures += 1
        self._retry_at = time.monotonic() + min(30.0, 0.05 * 2 ** min(self._failures, 10))
        _retrier.add(self)
        if self._failures == 1:
            log.warning("tokenlog: %r failed: %s", self.sink, exc)
            warnings.warn(
                f"{self.last_error}; tokenlog keeps the rows and retries (your call is unaffected)",
                TokenlogWarning,
                stacklevel=6,
            )

    def _recovered(self, written: int) -> None:
        if self._failures:
            self._failures = 0
            _retrier.discard(self)
            log.info("tokenlog: %r works again; wrote %d pending rows", self.sink, written)

    def _keep(self, records: Iterable[UsageRecord]) -> None:
        for record in records:
            if len(self.pending) >= MAX_PENDING:
                self.pending.popleft()
                self.lost += 1
                if self.lost == 1 or self.lost % 10_000 == 0:
                    message = f"{self.sink!r} has failed for {MAX_PENDING} rows; {self.lost} rows lost so far"
                    log.error("tokenlog: %s", message)
                    warnings.warn(message, TokenlogWarning, stacklevel=6)
            self.pending.append(record)

    def _after_fork_in_child(self) -> None:
        # The parent still owns its pending rows; a child that wrote them too would duplicate them.
        self._lock = threading.Lock()
        self.pending.clear()
        self._failures = 0


@dataclass(frozen=True)
class SinkStatus:
    """One sink's health, from :func:`tokenlog.sink_status`.

    ``pending``: rows kept because the sink failed, waiting for a retry. ``lost``: rows dropped
    because more than :data:`MAX_PENDING` were pending (each loss was also warned about).
    ``failing``: the last attempt to write failed. ``last_error``: what it said.
    """

    sink: Sink
    pending: int
    lost: int
    failing: bool
    last_error: str | None


def sink_status() -> list[SinkStatus]:
    """The health of every sink tokenlog has written to (and that still exists), oldest first.

    >>> import tokenlog
    >>> sink = tokenlog.MemorySink()
    >>> with tokenlog.usage_session(sinks=[sink]) as s:
    ...     _ = s.record({"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    >>> [(st.pending, st.lost, st.failing) for st in tokenlog.sink_status() if st.sink is sink]
    [(0, 0, False)]
    """
    with _guards_lock:
        guards = list(_guards.values())
    return [guarded.status() for guarded in guards]


def _write_in_order(sink: Sink, rows: deque[UsageRecord]) -> None:
    """Write ``rows`` to ``sink``, removing each from ``rows`` once it is stored."""
    write_many = getattr(sink, "write_many", None) if len(rows) > 1 else None
    if write_many is not None:
        write_many(list(rows))
        rows.clear()
        return
    while rows:
        sink.write(rows[0])
        rows.popleft()


def _as_sink_error(sink: object, exc: BaseException) -> SinkError:
    return exc if isinstance(exc, SinkError) else SinkError(f"{sink!r} failed: {exc!r}")


class _Retrier:
    """Retries failing sinks from a daemon thread, so kept rows are written once a sink works
    again even if no new record comes along. The thread runs only while some sink is failing."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._failing: set[GuardedSink] = set()  # held strongly until their rows are written
        self._thread: threading.Thread | None = None
        reset_after_fork(self)

    def add(self, guarded: GuardedSink) -> None:
        with self._cond:
            self._failing.add(guarded)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="tokenlog-retry", daemon=True)
                self._thread.start()
            self._cond.notify()

    def discard(self, guarded: GuardedSink) -> None:
        with self._cond:
            self._failing.discard(guarded)

    def failing(self) -> list[GuardedSink]:
        with self._cond:
            return list(self._failing)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._failing:
                    self._thread = None
                    return
                now = time.monotonic()
                wait = min(guarded._retry_at for guarded in self._failing) - now
                if wait > 0:
                    self._cond.wait(min(wait, 30.0))
                    continue
                due = [guarded for guarded in self._failing if guarded._retry_at <= now]
            for guarded in due:
                guarded._retry_if_due()

    def _after_fork_in_child(self) -> None:
        self._cond = threading.Condition()
        self._failing = set()
        self._thread = None


_retrier = _Retrier()
_guards: weakref.WeakValueDictionary[int, GuardedSink] = weakref.WeakValueDictionary()
_guards_lock = fork_safe_lock()


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


class _Capture:
    """Records made while a :func:`tokenlog.testing.capture_usage` block is open."""

    def __init__(self, write: bool) -> None:
        self.records: list[UsageRecord] = []
        self.write = write


_captures: tuple[_Capture, ...] = ()  # replaced, never changed in place: read without a lock
_captures_lock = fork_safe_lock()


def start_capture(*, write: bool) -> _Capture:
    """Send a copy of every record to a new capture (and, unless ``write``, nowhere else)."""
    global _captures
    capture = _Capture(write)
    with _captures_lock:
        _captures = (*_captures, capture)
    return capture


def stop_capture(capture: _Capture) -> None:
    """End a capture begun with :func:`start_capture`."""
    global _captures
    with _captures_lock:
        _captures = tuple(c for c in _captures if c is not capture)


def flush() -> None:
    """Write now what buffered and failing sinks are holding back, and flush the default sinks.

    tokenlog retries on its own (with each new record, in the background, and at exit); call
    this when you know the cause is gone (space freed, lock released) or before you read the
    log yourself. Returns nothing; rows that still cannot be written stay pending (see
    :func:`sink_status`).
    """
    flush_buffers()
    for guarded in _retrier.failing():
        guarded.retry()
    for guarded in config.created_default_sinks():
        _flush_quietly(guarded.sink)
    for sink in csv_sinks():  # each checks that the file its last rows went to was not deleted (again: a no-op)
        _flush_quietly(sink)


def _flush_quietly(sink: Sink) -> None:
    try:
        sink.flush()
    except Exception as exc:
        log.warning("tokenlog: flushing %r failed: %s", sink, exc)


@atexit.register
def _at_exit() -> None:
    flush()
    still = [guarded for guarded in _retrier.failing() if guarded.pending]
    if still:
        rows = [record for guarded in still for record in guarded.pending]
        write_fallback(rows, ", ".join(repr(guarded.sink) for guarded in still))
        for guarded in still:
            guarded.pending.clear()
            _retrier.discard(guarded)
