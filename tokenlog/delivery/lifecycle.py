"""The one lifecycle of every sink: :func:`flush` on demand, and the same steps once more at exit.

In order: write what buffers hold, then for every guarded sink retry what it keeps and flush it, and at exit
save whatever is still unwritten (rows a sink kept for a retry, rows a sink says it could not
store) to a fallback file, so that nothing is lost silently.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import tempfile
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
    unwritten: list[UsageRecord] = []
    where: list[str] = []
    for guarded in _every_sink():
        rows = guarded.take_pending()
        take_unwritten = getattr(guarded.sink, "take_unwritten", None)  # an optional sink capability
        if callable(take_unwritten):
            rows += take_unwritten()
        if rows:
            unwritten += rows
            where.append(repr(guarded.sink))
    if unwritten:
        write_fallback(unwritten, ", ".join(where))


def write_fallback(rows: list[UsageRecord], targets: str) -> None:
    """At exit, rows that still could not be written go to a CSV file with every column, and a warning names it."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = f"tokenlog-unwritten-{os.getpid()}-{stamp}.csv"
    try:
        path = os.path.join(tempfile.gettempdir(), path)  # raises if no temp dir takes a file (a full disk)
        CsvSink(path, extra_fields=EXTRA_COLUMNS).write_many(rows)
        where = f"they are in {path}"
    except Exception as exc:
        sys.stderr.writelines(format_row(record) for record in rows)
        where = f"writing them to {path} failed too ({exc}), so they were printed to stderr"
    message = f"tokenlog: {len(rows)} rows could not be written to {targets} before exit; {where}"
    warn(message)
    log.error("%s", message)
