"""A file that any number of threads and processes append to: what CsvSink and JsonlSink share.

Every append opens the file once (``O_APPEND``, kept open), takes an exclusive OS lock on it
(portalocker, ``flock`` on POSIX), lets the sink look at the file and compose its bytes, writes
them with one ``os.write`` (cutting the file back if that fails half-way), and unlocks. The
lock is held only for that one append.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections.abc import Callable

from ._fork import reset_after_fork
from .errors import SinkError

__all__ = ["AppendState", "LockedAppendFile", "read_appended"]

# Each platform gives: _lock_now(fd, _LOCK_NOW), which takes the exclusive lock or raises _LockBusy if another
# process holds it; _unlock_now(fd, _UNLOCK); and _LOCK_ERRORS, what locking can raise besides. The per-row
# path calls them directly (a Python call less each); _try_lock and _unlock below are the readable forms.
if os.name == "posix":
    import fcntl

    # portalocker's POSIX locker is fcntl.flock, so this is the very same lock that portalocker.lock()
    # takes (a process holding it through portalocker blocks us, and the other way round). Called
    # directly it costs 0.86 us a lock/unlock pair instead of 6.1 us through portalocker's checks,
    # which on a hot path is most of the cost of a row (see docs/benchmarks.md).
    _lock_now: Callable[[int, int], object] = fcntl.flock
    _LOCK_NOW = fcntl.LOCK_EX | fcntl.LOCK_NB
    _unlock_now: Callable[[int, int], object] = fcntl.flock
    _UNLOCK = fcntl.LOCK_UN
    _LockBusy: type[Exception] = BlockingIOError
    _LOCK_ERRORS: tuple[type[Exception], ...] = (OSError,)

else:  # pragma: no cover - Windows: portalocker's LockFileEx
    import portalocker

    _LOCK_FLAGS = portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING

    def _lock_now(fd: int, flags: int) -> object:
        return portalocker.lock(fd, _LOCK_FLAGS)

    def _unlock_now(fd: int, flags: int) -> object:
        return portalocker.unlock(fd)

    _LOCK_NOW = _UNLOCK = 0
    _LockBusy = portalocker.AlreadyLocked
    _LOCK_ERRORS = (OSError, portalocker.LockException)


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock if nobody holds it; False if another process does."""
    try:
        _lock_now(fd, _LOCK_NOW)
    except _LockBusy:
        return False
    return True


def _unlock(fd: int) -> None:
    _unlock_now(fd, _UNLOCK)


class AppendState:
    """What a sink sees of the file while it holds the lock, to decide what to append."""

    __slots__ = ("_end", "fd", "new_file", "rescued", "size")

    def __init__(self, fd: int, size: int, new_file: bool, end: int, rescued: tuple[object, ...] = ()) -> None:
        self.fd = fd
        self.size = size
        self.new_file = new_file  # a file this appender has not looked at yet (first use, replaced, reopened)
        self._end = end
        self.rescued = rescued
        """Items of :meth:`LockedAppendFile.append_known` that went to a file deleted since: append them again."""

    def ends_with_newline(self) -> bool:
        """True if the file is empty or its last byte is a line break (no writer died mid-line)."""
        return self.size == 0 or self.size == self._end or os.pread(self.fd, 1, self.size - 1) == b"\n"

    def cut(self, size: int) -> None:
        """Truncate the file to ``size`` bytes (we hold the lock, so nobody else is writing)."""
        os.ftruncate(self.fd, size)
        self.size = size


Compose = Callable[[AppendState], "bytes | None"]


_write = os.write
_seek = os.lseek
_monotonic = time.monotonic

CHECK_EVERY = 0.05
"""Seconds between the checks, on the fast path, that the file is still linked (also every CHECK_ROWS rows)."""
CHECK_ROWS = 1000

_SPINS = 10
"""Lock attempts at once, before yielding: the holder is most likely appending on another CPU right now and done
within microseconds, while a yield hands this CPU to another process for up to its time slice (8 processes on
2 cores, decorator + CsvSink: p99 of a row 0.09-0.66 ms -> 0.05-0.10 ms)."""
_yield_cpu: Callable[[], object] = getattr(os, "sched_yield", lambda: time.sleep(0))
_YIELDS = 20
"""Lock attempts, each after yielding the CPU, before the first sleep (8 processes on 2 cores: 64k rows/s with
sleeps alone, 94k-102k with these first; p99 1 ms -> 0.5 ms)."""


class LockedAppendFile:
    """Appends whole chunks of bytes to ``path`` under an exclusive lock, whatever else writes to it.

    ``path`` must already be absolute. A deleted or replaced file is followed: the path is opened
    again. Failures become :class:`~tokenlog.SinkError` naming the file and the cause.

    :meth:`append` checks (``fstat``) on every append that the file is still linked.
    :meth:`append_known`, the per-row fast path, leaves that check to :meth:`append` every
    :data:`CHECK_EVERY` seconds or :data:`CHECK_ROWS` rows (a sink checks sooner with an append of
    nothing, as ``CsvSink.flush`` does when :meth:`unchecked`): on Linux 6.13+ a ``stat`` between
    two writes makes the next write update the file's times in full, and per row that measured
    1.1 us, as much as the write itself. It keeps what it appended since the last check; if the file turns
    out to have been deleted, those items come back in :attr:`AppendState.rescued` for the sink to
    append to the new file. A file that shrank as well was emptied by ``tokenlog repair`` after
    copying every row to its replacement: nothing is rescued then.
    """

    def __init__(self, path: str, lock_timeout: float) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) the sink has looked at
        self._end = -1  # file size after our last append: if unchanged, it ends with a newline
        self._unverified: list[object] = []  # appended by append_known since the file was last seen linked
        self._orphans: list[object] = []  # appended to a file found deleted since: to be appended again
        self._check_at = 0.0  # when append_known must leave the next row to append() (which checks)
        self.generation = 0
        """Counts the files this appender has looked at; a sink's view of the file is only good for one."""
        reset_after_fork(self)

    def append(self, compose: Compose) -> bool:
        """Lock, ask ``compose`` for the bytes to write, write them whole, unlock.

        Returns False if ``compose`` returned ``None`` (nothing to write here).
        """
        with self._lock:
            try:
                return self._append(compose)
            except SinkError:
                raise
            except _LOCK_ERRORS as exc:
                self._forget_file()
                raise SinkError(f"cannot append to {self.path}: {_reason(exc)}") from exc

    def append_known(self, data: bytes, generation: int, item: object) -> bool:
        """Append ``data`` (which is ``item``, formatted) if the file is still the one the sink looked at
        in ``generation``; else False.

        The common case, written out (each row takes this path): the file is open, it is the one
        the sink has looked at, it is not empty, ends a line, and no check is due. In every other
        case nothing is written and the sink takes the general path (:meth:`append`), which checks,
        reopens, inspects and repairs as needed.
        """
        with self._lock:
            fd = self._fd
            unverified = self._unverified
            if (
                fd is None
                or generation != self.generation
                or self._file_id is None
                or len(unverified) >= CHECK_ROWS
                or _monotonic() >= self._check_at
            ):
                return False
            try:
                try:
                    _lock_now(fd, _LOCK_NOW)  # _try_lock, written out: this runs for every row
                except _LockBusy:
                    self._wait_for_lock(fd)
            except SinkError:
                raise
            except _LOCK_ERRORS as exc:
                self._forget_file()
                raise SinkError(f"cannot append to {self.path}: {_reason(exc)}") from exc
            try:
                size = _seek(fd, 0, os.SEEK_END)
                end = self._end
                if size == 0 or (size != end and (size < end or os.pread(fd, 1, size - 1) != b"\n")):
                    return False  # emptied, cut back, or another writer left half a line: the general path
                written = _write(fd, data)  # raises if it wrote nothing (ENOSPC, EFBIG): then nothing to undo
                if written != len(data):
                    self._write_rest(fd, data, size, written)
                self._end = size + len(data)
                unverified.append(item)
                return True
            except _LOCK_ERRORS as exc:
                self._forget_file()
                raise SinkError(f"cannot append to {self.path}: {_reason(exc)}") from exc
            finally:
                if self._fd == fd:
                    _unlock_now(fd, _UNLOCK)

    def take_orphans(self) -> list[object]:
        """Items found in a deleted file that could not be appended again yet; they are the caller's now."""
        with self._lock:
            orphans, self._orphans = self._orphans, []
            return orphans

    def unchecked(self) -> bool:
        """True if rows went to the file since it was last seen linked (:meth:`append` with nothing to add checks)."""
        return bool(self._unverified or self._orphans)

    def close(self) -> None:
        """Close the file; the next append opens it again."""
        with self._lock:
            self._forget_file()

    def _append(self, compose: Compose) -> bool:
        fd, stat = self._locked_fd()
        rescued, self._orphans = tuple(self._orphans), []
        try:
            file_id = (stat.st_dev, stat.st_ino)
            state = AppendState(fd, stat.st_size, file_id != self._file_id, self._end, rescued)
            try:
                data = compose(state)
            except BaseException:
                self._orphans[:0] = rescued  # not appended: still to be
                raise
            if file_id != self._file_id:
                self._file_id = file_id
                self.generation += 1  # after compose: a sink's view of the new file is set before this
            if data is None:
                return False  # the sink writes elsewhere (rescued items included)
            try:
                self._write_whole(fd, data, state.size)
            except BaseException:
                self._orphans[:0] = rescued
                raise
            self._end = state.size + len(data)
            return True
        finally:
            if self._fd == fd:
                _unlock(fd)

    def _locked_fd(self) -> tuple[int, os.stat_result]:
        """Open (or reopen) the file, take its lock and stat it; follow the path if the file was deleted."""
        for _ in range(3):
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                self._file_id, self._end = None, -1
            fd = self._fd
            if not _try_lock(fd):
                self._wait_for_lock(fd)
            stat = os.fstat(fd)
            if stat.st_nlink > 0:
                self._unverified.clear()  # what went to this file is in a linked file
                self._check_at = _monotonic() + CHECK_EVERY
                return fd, stat
            self._settle(stat)
            _unlock(fd)  # deleted or replaced since we opened it: open the path again
            self._forget_file()
        raise SinkError(f"cannot append to {self.path}: the file keeps disappearing")

    def _wait_for_lock(self, fd: int) -> None:
        """Another process holds the lock: wait for it (:func:`_acquire`) at most ``lock_timeout`` seconds."""
        if not _acquire(fd, self.lock_timeout):
            raise SinkError(
                f"cannot append to {self.path}: another process held its lock for more than {self.lock_timeout:g} s"
            )

    @staticmethod
    def _write_whole(fd: int, data: bytes, size: int) -> None:
        """Write all of ``data``; if that fails part-way, cut the file back to ``size``."""
        try:
            written = _write(fd, data)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # we hold the lock, so nobody else wrote past `size`
            raise
        if written < len(data):
            LockedAppendFile._write_rest(fd, data, size, written)

    @staticmethod
    def _write_rest(fd: int, data: bytes, size: int, written: int) -> None:
        """After a short write of ``written`` bytes at ``size``: write the rest, or cut the file back.

        The next call names the reason a write fell short (ENOSPC, EFBIG); if it fails, the file
        is cut back to ``size`` (we hold the lock, so nobody else wrote past it).
        """
        try:
            while written < len(data):
                step = _write(fd, data[written:])
                if step == 0:
                    raise OSError(errno.EIO, f"only {written} of {len(data)} bytes could be written")
                written += step
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise

    def _settle(self, stat: os.stat_result) -> None:
        """The rows appended since the last check went to the file ``stat`` describes: keep those
        that a deletion would lose."""
        if stat.st_nlink == 0 and stat.st_size >= self._end:  # deleted, and not emptied by tokenlog repair
            self._orphans.extend(self._unverified)
        self._unverified.clear()

    def _forget_file(self) -> None:
        if self._fd is not None:
            if self._unverified:
                with contextlib.suppress(OSError):
                    self._settle(os.fstat(self._fd))
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd, self._file_id, self._end = None, None, -1

    def _after_fork_in_child(self) -> None:
        # The child shares the parent's open file description, and so its lock: open our own.
        self._lock = threading.Lock()
        self._unverified, self._orphans = [], []  # the parent's rows: the parent sees to them
        self._forget_file()


def _acquire(fd: int, timeout: float) -> bool:
    """Take the lock another process holds: poll for it, at most ``timeout`` seconds; False if it stayed held.

    A blocking ``flock`` cannot be given a timeout, and a live process may hold the lock for
    ever; so we poll. An append holds the lock for microseconds, so the first retries come at
    once (the holder is likely running on another CPU), the next ones only yield the CPU (the
    holder, if it was preempted, gets to finish), then sleep 20 us, doubling up to 1 ms.
    Measured with 8 processes on one file: longer sleeps (portalocker's default is 0.25 s)
    leave the lock idle while writers sleep; a waiter thread doing a blocking flock (bounded by
    its caller) was tried twice and was no faster than polling (p99 of a row ~0.13 ms, against
    0.05-0.10 ms with the retries at once first).
    """
    deadline = time.monotonic() + timeout
    for _ in range(_SPINS):  # a running holder lets go within microseconds: ask again before giving up the CPU
        if _try_lock(fd):
            return True
    for _ in range(_YIELDS):  # an append holds the lock for microseconds: first just let the holder run
        _yield_cpu()
        if _try_lock(fd):
            return True
    delay = 0.00002
    while True:
        time.sleep(delay)
        if _try_lock(fd):
            return True
        if time.monotonic() >= deadline:
            return False
        delay = min(delay * 2, 0.001)


def read_appended(path: str, offset: int, lock_timeout: float = 0.05) -> tuple[os.stat_result, bytes]:
    """The file at ``path`` as it is now (its stat) and its bytes from ``offset`` on, read under the writers' lock.

    The lock is the one every append takes, so no append is half-written while we read; it is held for the
    read alone. If a writer holds it for longer than ``lock_timeout`` the bytes are read all the same (a
    reader that keeps only whole lines loses nothing). Raises ``OSError`` if the file cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        locked = _try_lock(fd) or _acquire(fd, lock_timeout)
        try:
            stat = os.fstat(fd)
            chunks = []
            position = os.lseek(fd, offset, os.SEEK_SET)
            while position < stat.st_size:
                chunk = os.read(fd, stat.st_size - position)
                if not chunk:
                    break
                chunks.append(chunk)
                position += len(chunk)
            return stat, b"".join(chunks)
        finally:
            if locked:
                _unlock(fd)
    finally:
        os.close(fd)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
