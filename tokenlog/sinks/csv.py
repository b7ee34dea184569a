"""CsvSink: the default sink, one CSV file that any number of processes can append to.

Every append takes an exclusive OS lock (portalocker, ``flock`` on POSIX) on the file itself,
looks at the file (empty? header? does it end with a newline?), writes the header and the
rows with one ``os.write``, and unlocks. The lock is held only for that one append.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence

import portalocker

from ..errors import SinkError, TokenlogWarning
from ..record import UsageRecord

__all__ = ["EXTRA_COLUMNS", "MANDATORY_COLUMNS", "CsvSink"]

MANDATORY_COLUMNS = ("TimestampUTC", "Model", "PromptTokens", "CompletionTokens", "TotalTokens")
"""The hackathon's mandatory columns: always first, always in this order."""

EXTRA_COLUMNS = ("Session", "Function", "LatencyMs", "RequestId", "Tags")
"""Optional columns a ``CsvSink`` adds after the mandatory ones when asked to."""

_BOM = b"\xef\xbb\xbf"
_HEAD_BYTES = 65536
_LOCK_FLAGS = portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING


def _quote(value: str) -> str:
    """RFC 4180: quote a field that holds a comma, a quote or a line break."""
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _text(value: str | None) -> str:
    return "" if value is None else _quote(value)


_CELLS: dict[str, Callable[[UsageRecord], str]] = {
    "TimestampUTC": lambda r: r.timestamp.isoformat(timespec="microseconds"),
    "Model": lambda r: _quote(r.model),
    "PromptTokens": lambda r: str(r.prompt_tokens),
    "CompletionTokens": lambda r: str(r.completion_tokens),
    "TotalTokens": lambda r: str(r.total_tokens),
    "Session": lambda r: _text(r.session),
    "Function": lambda r: _text(r.function),
    "LatencyMs": lambda r: "" if r.latency_ms is None else f"{r.latency_ms:.3f}",
    "RequestId": lambda r: _text(r.request_id),
    "Tags": lambda r: _quote(json.dumps(dict(r.tags), sort_keys=True, separators=(",", ":"))) if r.tags else "",
}


def format_row(record: UsageRecord, columns: Sequence[str] = MANDATORY_COLUMNS, newline: str = "\n") -> str:
    """One CSV line (with its line end) for ``record`` in the given column layout."""
    return ",".join([_CELLS[column](record) for column in columns]) + newline


class CsvSink:
    """Appends one line per record to a CSV file shared by threads and processes.

    The header ``TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens`` (then any
    ``extra_fields``, chosen from :data:`EXTRA_COLUMNS`) is written once, by whichever writer
    finds the file empty. ``path`` is made absolute when the sink is created, so a later
    ``os.chdir`` does not move the log.

    What happens when things go wrong:

    - the file cannot be opened, locked within ``lock_timeout`` seconds, or written (full disk,
      read-only): :meth:`write` raises :class:`~tokenlog.SinkError` naming the file, and leaves
      no partial line behind; tokenlog keeps the record and retries it later;
    - the file already has another header: if it is made of tokenlog columns, rows are written
      in the file's own column order (one warning); otherwise rows go to a side file
      ``<name>.tokenlog.csv`` next to it (one warning naming both headers), never misaligned;
    - the file does not end with a line break (a writer was killed mid-line): the next row
      starts on a new line, so it is never glued onto the broken one.

    >>> import tempfile, datetime, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "usage.csv"
    >>> sink = CsvSink(path)
    >>> now = datetime.datetime(2023, 10, 27, 10, 30, tzinfo=datetime.timezone.utc)
    >>> sink.write(UsageRecord(now, "mistral-small", 12, 5, 17))
    >>> print(path.read_text(), end="")
    TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens
    2023-10-27T10:30:00.000000+00:00,mistral-small,12,5,17
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "mistral_usage_log.csv",
        *,
        extra_fields: Iterable[str] = (),
        lock_timeout: float = 5.0,
    ) -> None:
        extra = tuple(extra_fields)
        unknown = [name for name in extra if name not in EXTRA_COLUMNS]
        if unknown or len(set(extra)) != len(extra):
            raise ValueError(
                f"CsvSink extra_fields {list(extra)!r}: each must appear once and be one of {list(EXTRA_COLUMNS)}"
            )
        self.path = os.path.abspath(os.fspath(path))
        self.extra_fields = extra
        self.columns = MANDATORY_COLUMNS + extra
        self.lock_timeout = lock_timeout
        self._header = (",".join(self.columns) + "\n").encode()
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) whose header was checked
        self._layout: tuple[str, ...] | None = self.columns  # None: rows go to the side file
        self._newline = "\n"
        self._end = -1  # file size after our last append: if unchanged, it ends with a newline
        self._side_sink: CsvSink | None = None
        _open_sinks.add(self)

    def __repr__(self) -> str:
        return f"CsvSink({self.path!r})"

    def write(self, record: UsageRecord) -> None:
        """Append one row; raise :class:`~tokenlog.SinkError` if it cannot be stored."""
        self.write_many((record,))

    def write_many(self, records: Iterable[UsageRecord]) -> None:
        """Append rows in order, all in one locked write."""
        batch = tuple(records)
        if not batch:
            return
        with self._lock:
            try:
                diverted = self._append(batch)
            except SinkError:
                raise
            except (OSError, portalocker.LockException) as exc:
                self._forget_file()
                raise SinkError(f"cannot append to {self.path}: {_reason(exc)}") from exc
        if diverted:
            self._side().write_many(batch)

    def flush(self) -> None:
        """Nothing is buffered: every row is in the file when :meth:`write` returns."""

    def close(self) -> None:
        """Close the file; a later :meth:`write` opens it again."""
        with self._lock:
            self._forget_file()
        if self._side_sink is not None:
            self._side_sink.close()

    # -- the locked append -------------------------------------------------------------------

    def _append(self, records: tuple[UsageRecord, ...]) -> bool:
        """Append under the file lock; return True if the file's header sends rows elsewhere."""
        fd = self._locked_fd()
        try:
            stat = os.fstat(fd)
            size = stat.st_size
            file_id = (stat.st_dev, stat.st_ino)
            if size and file_id != self._file_id:
                size = self._inspect(fd, size)
            self._file_id = file_id
            if self._layout is None:
                return True
            if size == 0:
                self._layout, self._newline = self.columns, "\n"
                prefix = self._header
            elif size == self._end or os.pread(fd, 1, size - 1) == b"\n":
                prefix = b""
            else:
                prefix = self._newline.encode()  # a writer died mid-line: never glue onto it
            data = prefix + self._encode(records)
            self._write_whole(fd, data, size)
            self._end = size + len(data)
            return False
        finally:
            portalocker.unlock(fd)

    def _locked_fd(self) -> int:
        """Open (or reopen) the file and take its lock; follow the path if the file was deleted."""
        for _ in range(3):
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                self._file_id, self._end, self._layout = None, -1, self.columns
            self._acquire(self._fd)
            if os.fstat(self._fd).st_nlink > 0:
                return self._fd
            portalocker.unlock(self._fd)  # deleted or replaced since we opened it: open the path again
            self._forget_file()
        raise SinkError(f"cannot append to {self.path}: the file keeps disappearing")

    def _acquire(self, fd: int) -> None:
        """Take the exclusive lock, waiting at most ``lock_timeout`` seconds."""
        try:
            portalocker.lock(fd, _LOCK_FLAGS)
            return
        except portalocker.AlreadyLocked:
            pass
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.00005
        while True:
            time.sleep(delay)
            try:
                portalocker.lock(fd, _LOCK_FLAGS)
                return
            except portalocker.AlreadyLocked:
                if time.monotonic() >= deadline:
                    raise SinkError(
                        f"cannot append to {self.path}: another process held its lock for more than "
                        f"{self.lock_timeout:g} s"
                    ) from None
            delay = min(delay * 2, 0.005)

    def _inspect(self, fd: int, size: int) -> int:
        """Check the header of a file we have not seen yet; return its usable size."""
        head = os.pread(fd, _HEAD_BYTES, 0)
        end = head.find(b"\n")
        if end < 0:
            if size <= len(head) and self._header.startswith(head.removeprefix(_BOM)):
                os.ftruncate(fd, 0)  # only a header cut short by a killed writer: start afresh
                return 0
            first = head
        else:
            first = head[:end]
        self._newline = "\r\n" if first.endswith(b"\r") else "\n"
        found = first.removeprefix(_BOM).rstrip(b"\r").decode("utf-8", "replace")
        columns = tuple(found.split(","))
        if columns == self.columns:
            self._layout = self.columns
        elif columns[: len(MANDATORY_COLUMNS)] == MANDATORY_COLUMNS and _known_and_unique(columns):
            self._layout = columns
            _warn(
                f"{self.path} has the header {found!r}; this sink was asked for {','.join(self.columns)!r}, "
                "so its rows follow the file's columns"
            )
        else:
            self._layout = None
            _warn(
                f"{self.path} has the header {found[:200]!r}, not {','.join(self.columns)!r}; rows go to "
                f"{self._side_path()} instead, so that no row is misaligned"
            )
        return size

    def _encode(self, records: tuple[UsageRecord, ...]) -> bytes:
        assert self._layout is not None
        text = "".join([format_row(record, self._layout, self._newline) for record in records])
        try:
            return text.encode()
        except UnicodeEncodeError:
            _warn(f"a row for {self.path} holds text that is not valid Unicode; it is written escaped")
            return text.encode("utf-8", "backslashreplace")

    def _write_whole(self, fd: int, data: bytes, size: int) -> None:
        """Write all of ``data``; if that fails part-way, cut the file back to ``size``."""
        try:
            written = os.write(fd, data)
            while written < len(data):  # a short write: the next call names the reason (ENOSPC, EFBIG)
                step = os.write(fd, data[written:])
                if step == 0:
                    raise OSError(errno.EIO, f"only {written} of {len(data)} bytes could be written")
                written += step
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # we hold the lock, so nobody else wrote past `size`
            raise

    # -- helpers -----------------------------------------------------------------------------

    def _side_path(self) -> str:
        root, ext = os.path.splitext(self.path)
        return f"{root}.tokenlog{ext or '.csv'}"

    def _side(self) -> CsvSink:
        if self._side_sink is None:
            self._side_sink = CsvSink(self._side_path(), extra_fields=self.extra_fields, lock_timeout=self.lock_timeout)
        return self._side_sink

    def _forget_file(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._file_id, self._end = None, None, -1

    def _after_fork_in_child(self) -> None:
        # The child shares the parent's open file description, and so its lock: open our own.
        self._lock = threading.Lock()
        self._forget_file()


def _known_and_unique(columns: tuple[str, ...]) -> bool:
    return len(set(columns)) == len(columns) and all(column in _CELLS for column in columns)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _warn(message: str) -> None:
    warnings.warn(message, TokenlogWarning, stacklevel=4)


_open_sinks: weakref.WeakSet[CsvSink] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for sink in list(_open_sinks):
        sink._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
