"""BufferedSink: batch the writes of another sink in a background thread, for very high call rates."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable

from .._fork import reset_after_fork
from ..record import UsageRecord
from ..sinks.base import Sink
from .guard import GuardedSink, guard

__all__ = ["BufferedSink", "flush_buffers"]


class BufferedSink:
    """Holds records in memory and hands them to ``sink`` in batches, from a background thread.

    A batch is written when ``max_rows`` records are waiting or when the oldest has waited
    ``max_seconds``, whichever comes first; and always at :meth:`flush` / :meth:`close`, when a
    ``usage_session`` routed to it ends, at :func:`tokenlog.flush` and at interpreter exit.
    Your call only appends to a list, so it never waits for a file lock, a disk or a network.

    The price: a record lives only in memory until its batch is written. A process killed
    with SIGKILL (or the OOM killer, or a power cut) loses the records still buffered: at most
    ``max_rows`` of them, made in the last ``max_seconds``. Without a BufferedSink a record is
    in the file (CSV, JSONL) or committed (SQLite) before your call returns.

    Failures of ``sink`` are isolated like any sink's: the batch is kept and retried, and
    :func:`tokenlog.sink_status` shows ``sink``'s pending and lost rows. Strict mode does not
    reach through a BufferedSink: its writes happen later, in another thread.

    After ``os.fork()`` the child starts with an empty buffer (the parent still writes its own)
    and starts its own thread when it first needs one.

    >>> import tokenlog
    >>> memory = tokenlog.MemorySink()
    >>> buffered = BufferedSink(memory, max_rows=100, max_seconds=60)
    >>> with tokenlog.usage_session(sinks=[buffered]) as s:
    ...     _ = s.record({"model": "m", "usage": {"prompt_tokens": 2, "completion_tokens": 1}})
    ...     len(memory.records)          # still in the buffer
    0
    >>> len(memory.records)              # the session's end flushed it
    1
    """

    def __init__(self, sink: Sink, *, max_rows: int = 1000, max_seconds: float = 1.0) -> None:
        if not callable(getattr(sink, "write", None)):
            raise TypeError(f"BufferedSink needs a sink to write to (an object with write(record)), not {sink!r}")
        if isinstance(sink, BufferedSink):
            raise TypeError(f"{sink!r} is buffered already")
        if type(max_rows) is not int or max_rows < 1:
            raise ValueError(f"BufferedSink max_rows is {max_rows!r}, expected a positive integer")
        if not max_seconds > 0:
            raise ValueError(f"BufferedSink max_seconds is {max_seconds!r}, expected a positive number of seconds")
        self.sink = sink
        self.wants_cost = getattr(sink, "wants_cost", False) is True  # priced as the sink it wraps asks
        self.max_rows = max_rows
        self.max_seconds = float(max_seconds)
        self._guarded: GuardedSink = guard(sink)
        self._start()
        _open.add(self)
        reset_after_fork(self)

    def _start(self) -> None:
        self._rows: list[UsageRecord] = []
        self._oldest = 0.0  # monotonic time the oldest buffered row arrived
        self._cond = threading.Condition()  # guards _rows, _oldest, _thread, _closed
        self._writing = threading.Lock()  # one batch at a time, so batches stay in order
        self._thread: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"BufferedSink({self.sink!r}, max_rows={self.max_rows}, max_seconds={self.max_seconds:g})"

    def write(self, record: UsageRecord) -> None:
        """Add ``record`` to the buffer; never blocks on the sink and never raises."""
        self.write_many((record,))

    def write_many(self, records: Iterable[UsageRecord]) -> None:
        """Add ``records`` to the buffer, in order."""
        with self._cond:
            was_empty = not self._rows
            self._rows.extend(records)
            if not self._rows:
                return
            if was_empty:
                self._oldest = time.monotonic()
            if self._thread is None:
                self._closed = False  # written to after close(): open again, as the other sinks do
                self._thread = threading.Thread(target=self._run, name=f"tokenlog-buffer-{id(self):x}", daemon=True)
                self._thread.start()
            if was_empty or len(self._rows) >= self.max_rows:
                self._cond.notify()

    def flush(self) -> None:
        """Write everything buffered now (in the calling thread), then flush ``sink``."""
        self._write_batch()
        self.sink.flush()

    def close(self) -> None:
        """Write everything buffered, stop the thread and close ``sink``."""
        with self._cond:
            self._closed = True
            thread, self._thread = self._thread, None
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self._write_batch()
        self.sink.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._rows and not self._closed:
                    self._cond.wait()
                while not self._closed and len(self._rows) < self.max_rows:
                    left = self._oldest + self.max_seconds - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                if self._closed:
                    return  # close() writes what is left
            self._write_batch()

    def _write_batch(self) -> None:
        with self._writing:
            with self._cond:
                batch, self._rows = self._rows, []
            if batch:
                self._guarded.write_many(batch, strict=False)

    def _after_fork_in_child(self) -> None:
        self._start()  # the parent writes the rows it buffered; the child's thread starts when needed


_open: weakref.WeakSet[BufferedSink] = weakref.WeakSet()


def flush_buffers() -> None:
    """Write what every open :class:`BufferedSink` holds (used by :func:`tokenlog.flush` and at exit)."""
    for buffered in list(_open):
        buffered._write_batch()
