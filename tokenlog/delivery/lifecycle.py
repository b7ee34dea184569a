"""The one lifecycle of every sink: :func:`flush` on demand, and the same steps once more at exit.

In order: write what buffers hold, then for every guarded sink retry what it keeps and flush it, and at exit
save whatever is still unwritten (rows a sink kept for a retry, rows a sink says it could not
store) to a fallback file, so that nothing is lost silently: beside the log it was meant for, else in the
user's state directory (``$XDG_STATE_HOME/tokenlog``, ``~/.local/state/tokenlog``), never in the shared temp
directory, which is emptied at boot or by cleaners.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import time

from ..errors import warn
from ..format import EXTRA_COLUMNS
from ..record import UsageRecord
from ..sinks.base import sinks_to_flush
from ..sinks.csv import CsvSink, format_row
from .buffered import flush_buffers
from .guard import GuardedSink, guard, guards

__all__ = ["flush", "write_fallback"]

log = logging.getLogger("tokenlog")


def flush() -> None:
    """Write now what buffered and failing sinks are holding back, and flush every sink.

    tokenlog retries on its own (with each new record, in the background, and at exit); call
    this when you know the cause is gone (space freed, lock released) or before you read the
    log yourself. Returns nothing; rows that still cannot be written stay pending (see
    :func:`~tokenlog.sink_status`).
    """
    flush_buffers()
    for guarded in _every_sink():  # a failing sink is among them (its retrier holds it): its flush retries first
        guarded.flush()


def _every_sink() -> list[GuardedSink]:
    """Every sink tokenlog writes to, and every sink that asked to be flushed (``sinks.base.flush_at_exit``)."""
    known = guards()
    seen = {id(guarded.sink) for guarded in known}
    return known + [guard(sink) for sink in sinks_to_flush() if id(sink) not in seen]


@atexit.register
def _at_exit() -> None:
    flush()
    for guarded in _every_sink():
        rows = guarded.take_pending()
        take_unwritten = getattr(guarded.sink, "take_unwritten", None)  # an optional sink capability
        if callable(take_unwritten):
            rows += take_unwritten()
        if rows:
            write_fallback(rows, repr(guarded.sink), _log_path(guarded.sink))


def write_fallback(rows: list[UsageRecord], targets: str, log_path: str | None = None) -> None:
    """At exit, rows that still could not be written go to a CSV file with every column, and a warning names it.

    The file is ``tokenlog-unwritten-<pid>-<time>.csv`` beside ``log_path`` (the log they were meant for), else
    in :func:`state_directory`; if neither takes it, the rows are printed to standard error.
    """
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    name = f"tokenlog-unwritten-{os.getpid()}-{stamp}.csv"
    places = [os.path.dirname(log_path)] if log_path else []
    failed: list[str] = []
    for directory in [*places, state_directory()]:
        path = os.path.join(directory, name)
        try:
            os.makedirs(directory, exist_ok=True)
            sink = CsvSink(path, extra_fields=EXTRA_COLUMNS)
            try:
                sink.write_many(rows)
            finally:
                sink.close()
        except Exception as exc:
            failed.append(f"{path} ({exc})")
            with contextlib.suppress(OSError):
                if os.path.getsize(path) == 0:
                    os.unlink(path)  # created, then refused every byte: leave nothing that looks like a save
            continue
        where = f"they are in {path}"
        break
    else:
        sys.stderr.writelines(format_row(record) for record in rows)
        where = f"writing them to {' and to '.join(failed)} failed too, so they were printed to stderr"
    message = f"tokenlog: {len(rows)} rows could not be written to {targets} before exit; {where}"
    warn(message)
    log.error("%s", message)


def state_directory() -> str:
    """Where tokenlog keeps what must outlive the program: ``$XDG_STATE_HOME/tokenlog``, else
    ``~/.local/state/tokenlog`` (``%LOCALAPPDATA%\\tokenlog`` on Windows)."""
    base = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):  # the XDG rule: a relative value is ignored
        local = os.environ.get("LOCALAPPDATA", "") if os.name == "nt" else ""
        base = local or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "tokenlog")


def _log_path(sink: object) -> str | None:
    """The file a sink writes to (the built-in file sinks have ``path``; a ``BufferedSink`` wraps one), if any."""
    for candidate in (sink, getattr(sink, "sink", None)):
        path = getattr(candidate, "path", None)
        if isinstance(path, str) and os.path.isabs(path):
            return path
    return None
