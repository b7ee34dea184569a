"""Guarded sinks: what keeps a sink's failures away from the caller.

A :class:`GuardedSink` wraps one sink with a retry buffer, a backoff, a warning and a status. It
decides once, when it is made, which of the sink's entries it uses: ``write(record)`` always, and
``write_fields(fields)`` where the sink offers it (a row from the record's field values, without
building the record). :class:`Fanout` hands one record to several guarded sinks. Strict mode
(``configure(on_error="raise")``) is set here by :func:`set_strict`.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .._fork import fork_safe_lock, reset_after_fork
from ..errors import SinkError, warn
from ..record import RecordValues, UsageRecord, trusted_record
from ..sinks.base import Sink

__all__ = [
    "MAX_PENDING",
    "Destination",
    "Fanout",
    "GuardedSink",
    "SinkStatus",
    "destination",
    "failing",
    "guard",
    "guards",
    "set_strict",
    "sink_status",
]

log = logging.getLogger("tokenlog")

MAX_PENDING = 100_000
"""Rows kept per failing sink; past this the oldest are dropped and counted as lost, loudly."""

_strict = False


def set_strict(strict: bool) -> None:
    """Strict mode on or off: a sink's failure raises :class:`~tokenlog.SinkError` into the call.

    Written by ``tokenlog.configure()`` (and ``$TOKENLOG_ON_ERROR``) only.
    """
    global _strict
    _strict = strict


class Destination(Protocol):
    """Where a route sends one record: a :class:`GuardedSink`, or a :class:`Fanout` of several."""

    takes_fields: bool
    """True if every sink behind it writes a row from the field values: no record need be built."""
    wants_cost: bool
    """True if a sink behind it stores each call's cost (``CsvSink(extra_fields=["CostUSD"])``): records are
    priced when they are made."""

    def write(self, record: UsageRecord) -> None: ...

    def write_fields(self, fields: RecordValues) -> None: ...


def _own_capability(sink: Sink, name: str) -> Callable[..., Any] | None:
    """``sink``'s method ``name``, if the class that defines it is the one that defines ``write`` or below.

    A subclass that overrides ``write`` but inherits ``write_fields`` writes rows its own way: it
    gets records.
    """
    kind = type(sink)
    owner = next((cls for cls in kind.__mro__ if name in vars(cls)), None)
    writer = next((cls for cls in kind.__mro__ if "write" in vars(cls)), None)
    if owner is None or writer is None or not issubclass(owner, writer):
        return None
    method = getattr(sink, name, None)
    return method if callable(method) else None


class GuardedSink:
    """A sink plus what keeps its failures away from the caller: a retry buffer and a warning.

    One guard exists per sink object, so that every route to a sink shares its order.
    ``pending`` holds the rows kept while the sink fails (oldest first), ``lost`` counts those
    dropped past :data:`MAX_PENDING`; :func:`sink_status` reports both for every sink.
    """

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._write_fields: Callable[[RecordValues], bool] | None = _own_capability(sink, "write_fields")
        self.takes_fields = self._write_fields is not None
        self.wants_cost = getattr(sink, "wants_cost", False) is True  # an optional sink attribute
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
                self._refused(record, exc)
            return
        self.write_many((record,))

    def write_fields(self, fields: RecordValues) -> None:
        """:meth:`write` of ``trusted_record(*fields)``, building the record only if the sink needs one."""
        write_fields = self._write_fields
        if write_fields is not None and not self.pending:
            try:
                if write_fields(fields):
                    return
            except Exception as exc:
                self._refused(trusted_record(*fields), exc)
                return
        self.write(trusted_record(*fields))

    def write_many(self, records: Sequence[UsageRecord], *, strict: bool | None = None) -> None:
        """Write ``records`` in order after any kept ones, or keep them for a later retry.

        ``strict`` (default: strict mode is on) raises :class:`~tokenlog.SinkError` instead of
        keeping rows the sink refused.
        """
        if strict is None:
            strict = _strict
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

    def flush(self) -> None:
        """Write the pending rows if the sink takes them now, then flush the sink; never raises."""
        self.retry()
        try:
            self.sink.flush()
        except Exception as exc:
            log.warning("tokenlog: flushing %r failed: %s", self.sink, exc)

    def status(self) -> SinkStatus:
        """How this sink is doing: rows pending, rows lost, whether it is failing now."""
        with self._lock:
            return SinkStatus(self.sink, len(self.pending), self.lost, self._failures > 0, self.last_error)

    def take_pending(self) -> list[UsageRecord]:
        """The rows still pending, which are the caller's from now on (the exit handler's fallback file)."""
        with self._lock:
            rows = list(self.pending)
            self.pending.clear()
            _retrier.discard(self)
            return rows

    def _refused(self, record: UsageRecord, exc: Exception) -> None:
        with self._lock:
            if _strict:
                raise _as_sink_error(self.sink, exc) from exc
            self._keep((record,))  # before warning: a warnings filter set to "error" must not lose it
            self._failed(exc)

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
            warn(f"{self.last_error}; tokenlog keeps the rows and retries (your call is unaffected)")

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
                    warn(message)
            self.pending.append(record)

    def _after_fork_in_child(self) -> None:
        # The parent still owns its pending rows; a child that wrote them too would duplicate them.
        self._lock = threading.Lock()
        self.pending.clear()
        self._failures = 0


class Fanout:
    """Several guarded sinks that each get every record, in order; in strict mode the first failure is
    raised after every sink was tried."""

    __slots__ = ("guards", "takes_fields", "wants_cost")

    def __init__(self, guards: tuple[GuardedSink, ...]) -> None:
        self.guards = guards
        self.takes_fields = all(guarded.takes_fields for guarded in guards)
        self.wants_cost = any(guarded.wants_cost for guarded in guards)

    def __repr__(self) -> str:
        return f"Fanout({list(self.guards)!r})"

    def write(self, record: UsageRecord) -> None:
        """Write ``record`` to every sink."""
        self._each(GuardedSink.write, record)

    def write_fields(self, fields: RecordValues) -> None:
        """Write the row of ``fields`` to every sink (each builds the record only if it needs one)."""
        self._each(GuardedSink.write_fields, fields)

    def _each(self, write: Callable[[GuardedSink, Any], None], item: object) -> None:
        errors: list[Exception] = []
        for guarded in self.guards:
            try:
                write(guarded, item)
            except Exception as exc:  # strict mode: the other sinks still get the record
                errors.append(exc)
        if errors:
            raise errors[0]


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
"""Every guard that exists, by its sink's id, oldest first (a failing one is held by the retrier)."""
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


def destination(sinks: Iterable[Sink]) -> Destination:
    """Where a route sends records for ``sinks``: the one guard of a single sink, or a :class:`Fanout`."""
    guarded = tuple(guard(sink) for sink in sinks)
    return guarded[0] if len(guarded) == 1 else Fanout(guarded)


def guards() -> list[GuardedSink]:
    """Every guarded sink that still exists, oldest first."""
    with _guards_lock:
        return list(_guards.values())


def failing() -> list[GuardedSink]:
    """The guarded sinks whose last write failed."""
    return _retrier.failing()


def sink_status() -> list[SinkStatus]:
    """The health of every sink tokenlog has written to (and that still exists), oldest first.

    >>> import tokenlog
    >>> sink = tokenlog.MemorySink()
    >>> with tokenlog.usage_session(sinks=[sink]) as s:
    ...     _ = s.record({"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    >>> [(st.pending, st.lost, st.failing) for st in tokenlog.sink_status() if st.sink is sink]
    [(0, 0, False)]
    """
    return [guarded.status() for guarded in guards()]
