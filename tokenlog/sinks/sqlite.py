"""SqliteSink: rows in a SQLite table, shared by any number of threads and processes."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .. import format as _format
from .._fork import reset_after_fork
from ..errors import SinkError, warn
from ..format import second_of
from ..record import UNIT_NAMES, UsageRecord, has_units
from ._fields import FIELDS, calls_json, latency, tags_json

if TYPE_CHECKING:
    import sqlite3

__all__ = ["SqliteSink"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS "{table}" (
    timestamp TEXT NOT NULL,
    model TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    total_tokens INTEGER NOT NULL,
    session TEXT,
    function TEXT,
    latency_ms REAL,
    request_id TEXT,
    tags TEXT NOT NULL DEFAULT '{{}}',
{units}
)"""
_UNIT_TYPES = {
    "cached_tokens": "INTEGER",
    "reasoning_tokens": "INTEGER",
    "audio_seconds": "REAL",
    "connector_tokens": "INTEGER",
    "connector_calls": "TEXT",  # JSON: {"web_search": 1}
    "pages": "INTEGER",
    "service_tier": "TEXT",
    "cost_usd": "REAL",
}
"""The column type of each unit (:data:`~tokenlog.record.UNIT_NAMES`); NULL when the response did not say."""
_NO_UNITS = (None,) * len(UNIT_NAMES)
_Row = tuple[object, ...]  # the values of FIELDS, in order
_abandoned: list[object] = []  # connections inherited across fork: never used, never closed, in the child


class _Waiting:
    """Rows of one write waiting for a transaction (group commit), and how it ended."""

    __slots__ = ("done", "error", "rows")

    def __init__(self, rows: list[_Row]) -> None:
        self.rows = rows
        self.done = False
        self.error: BaseException | None = None


class SqliteSink:
    """Inserts one row per record into ``table`` (default ``usage``) of a SQLite database.

    Columns: ``timestamp`` (TEXT, ISO 8601 UTC with microseconds, as in the CSV), ``model``,
    ``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``session``, ``function``,
    ``latency_ms`` (REAL), ``request_id`` and ``tags`` (TEXT holding a JSON object), with indexes
    on ``timestamp`` and ``model``. The table and indexes are created if missing.

    The database runs in WAL mode, so readers never block writers. A row is committed when
    :meth:`write` returns. Each write is one transaction that takes the write lock at once (one
    ``INSERT`` on its own, or ``BEGIN IMMEDIATE`` ... ``COMMIT`` around several rows); rows that
    other threads write through the same sink while a transaction is being committed share the
    next one (group commit: each of those writes returns once that transaction is committed, or
    raises if it failed). A writer that finds the database busy waits up to ``timeout`` seconds,
    then retries up to ``retries`` times before it gives up with :class:`~tokenlog.SinkError`
    (and tokenlog keeps the rows for later). Text that is not valid Unicode (a lone surrogate)
    is stored with a backslash escape, with a warning.

    >>> import tempfile, datetime, pathlib, sqlite3
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "usage.db"
    >>> now = datetime.datetime(2023, 10, 27, 10, 30, tzinfo=datetime.timezone.utc)
    >>> SqliteSink(path).write(UsageRecord(now, "mistral-small", 12, 5, 17))
    >>> sqlite3.connect(path).execute("SELECT model, sum(total_tokens) FROM usage GROUP BY model").fetchall()
    [('mistral-small', 17)]
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        table: str = "usage",
        *,
        timeout: float = 5.0,
        retries: int = 3,
    ) -> None:
        if not isinstance(table, str) or not _IDENTIFIER.match(table):
            raise ValueError(f"SqliteSink table {table!r}: use letters, digits and '_', not starting with a digit")
        if os.fspath(path) in ("", ":memory:"):
            raise ValueError(
                f"SqliteSink needs a database file, not {os.fspath(path)!r}; use MemorySink to keep rows in memory"
            )
        if retries < 0 or timeout < 0:
            raise ValueError(f"SqliteSink timeout={timeout!r}, retries={retries!r}: both must be >= 0")
        self.path = os.path.abspath(os.fspath(path))
        self.table = table
        self.timeout = timeout
        self.retries = retries
        names = ", ".join(FIELDS)
        self._insert = f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(FIELDS))})'
        self._lock = threading.Lock()  # held while the connection is in use (a transaction, close)
        self._queue = threading.Condition(threading.Lock())  # guards the two below; notified after each commit
        self._waiting: list[_Waiting] = []  # writes not taken into a transaction yet, in arrival order
        self._leading = False  # a thread is committing a transaction
        self._connection: sqlite3.Connection | None = None
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"SqliteSink({self.path!r}, table={self.table!r})"

    def write(self, record: UsageRecord) -> None:
        """Insert one row; raise :class:`~tokenlog.SinkError` if it cannot be committed."""
        self._commit([self._row(record)])

    def write_many(self, records: Iterable[UsageRecord]) -> None:
        """Insert rows in order, in one transaction: all of them or none."""
        rows = [self._row(record) for record in records]
        if rows:
            self._commit(rows)

    def flush(self) -> None:
        """Nothing is buffered: every row is committed when :meth:`write` returns."""

    def close(self) -> None:
        """Close the connection; a later :meth:`write` opens it again."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- the transaction -----------------------------------------------------------------------

    def _commit(self, rows: list[_Row]) -> None:
        """Commit ``rows``, with those of the writes waiting meanwhile, and return once they are committed.

        Group commit, leader and followers: a write queues its rows. If no transaction is being
        committed, it leads: it takes every write waiting now into one transaction and commits it
        (the queue stays open meanwhile, so that the next writes gather for the next transaction),
        then wakes the writes it committed. Otherwise it waits until a leader has committed its
        rows, or until no transaction is in flight, and then leads. Followers wait on a condition,
        not on the commit lock: a thread whose rows are committed returns at once, instead of
        queueing for the lock behind the next transaction. One thread alone leads every time: one
        transaction a write, as without the queue.
        """
        mine = _Waiting(rows)
        queue = self._queue
        with queue:
            self._waiting.append(mine)
            while self._leading and not mine.done:
                queue.wait()  # a transaction is in flight: ours are in it, or wait for the next one
            if not mine.done:
                self._leading = True
                batch = self._waiting
                self._waiting = []
        if mine.done:
            if mine.error is not None:  # another thread's transaction held these rows, and it failed
                failure = mine.error
                if isinstance(failure, SinkError):
                    raise SinkError(str(failure)) from failure.__cause__
                raise SinkError(f"cannot write to {self.path} (table {self.table}): {failure!r}") from failure
            return
        try:
            with self._lock:
                self._insert_batch(batch, mine)
        finally:
            with queue:
                for entry in batch:
                    entry.done = True
                self._leading = False
                queue.notify_all()

    def _insert_batch(self, batch: list[_Waiting], mine: _Waiting) -> None:
        """One transaction for the rows of every write in ``batch``; raise if ``mine`` failed.

        If the transaction fails, every write gets the error. But a failure other than the database
        being busy may be one write's doing (a value SQLite cannot store): then each write is tried
        again in a transaction of its own, so that it fails alone.
        """
        try:
            self._with_retries(mine.rows if len(batch) == 1 else [row for entry in batch for row in entry.rows])
        except BaseException as exc:
            if len(batch) == 1 or not isinstance(exc, Exception) or _busy(exc.__cause__):
                for entry in batch:
                    entry.error = exc
                raise
            for index, entry in enumerate(batch):
                try:
                    self._with_retries(entry.rows)
                except Exception as own:
                    entry.error = own
                except BaseException as own:  # an interrupt: the writes not tried yet fail with it
                    for rest in batch[index:]:
                        rest.error = own
                    raise
            if mine.error is not None:  # the others raise theirs in their own threads
                raise mine.error from mine.error.__cause__

    def _with_retries(self, rows: list[_Row]) -> None:
        delay = 0.01
        for attempt in range(self.retries + 1):
            try:
                self._insert_rows(self._connection or self._connect(), rows)
                return
            except Exception as exc:
                sqlite3 = sys.modules.get("sqlite3")  # imported by _connect before any sqlite3 error can arise
                if sqlite3 is None or not isinstance(exc, sqlite3.Error):
                    raise
                busy = _busy(exc)
                if not busy:
                    self._drop_connection()
                if not busy or attempt == self.retries:
                    raise SinkError(f"cannot write to {self.path} (table {self.table}): {exc}") from exc
            time.sleep(delay)
            delay = min(delay * 4, 1.0)

    def _insert_rows(self, connection: sqlite3.Connection, rows: list[_Row]) -> None:
        if len(rows) == 1:
            # One statement in autocommit mode is a transaction of its own, and takes the write lock when it
            # starts, with the busy timeout, as BEGIN IMMEDIATE does: the same locking, two statements fewer.
            connection.execute(self._insert, rows[0])
            return
        connection.execute("BEGIN IMMEDIATE")  # take the write lock now: a deferred upgrade can deadlock
        try:
            connection.executemany(self._insert, rows)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            import sqlite3

            connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash of the process loses nothing
                units = ",\n".join(f"    {name} {_UNIT_TYPES[name]}" for name in UNIT_NAMES)
                connection.execute(_SCHEMA.format(table=self.table, units=units))
                self._check_columns(connection)
                connection.execute(f'CREATE INDEX IF NOT EXISTS "{self.table}_timestamp" ON "{self.table}" (timestamp)')
                connection.execute(f'CREATE INDEX IF NOT EXISTS "{self.table}_model" ON "{self.table}" (model)')
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _check_columns(self, connection: sqlite3.Connection) -> None:
        """Refuse a table without the record's fixed columns; add the unit columns an older table lacks.

        A table written by an earlier tokenlog is migrated in place, by ``ALTER TABLE ... ADD COLUMN`` (its
        rows are never rewritten; they read NULL for the new units), in one transaction that looks again,
        so that processes opening it at once add each column once.
        """
        found = self._columns(connection)
        missing = [name for name in FIELDS if name not in found and name not in UNIT_NAMES]
        if missing:
            raise SinkError(
                f"{self.path} already has a table {self.table!r} with the columns {found}, without {missing}; "
                "pass another table= to SqliteSink, or another database"
            )
        if all(name in found for name in UNIT_NAMES):
            return
        connection.execute("BEGIN IMMEDIATE")
        try:
            found = self._columns(connection)
            for name in UNIT_NAMES:
                if name not in found:
                    connection.execute(f'ALTER TABLE "{self.table}" ADD COLUMN {name} {_UNIT_TYPES[name]}')
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise

    def _columns(self, connection: sqlite3.Connection) -> list[str]:
        return [row[1] for row in connection.execute(f'PRAGMA table_info("{self.table}")')]

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # a broken connection may refuse to close; drop it all the same
                self._connection.close()
            self._connection = None

    # -- the row -------------------------------------------------------------------------------

    def _row(self, record: UsageRecord) -> _Row:
        ts = record.timestamp
        second = _format.last_second
        if not second.start <= ts < second.end:  # second_of(ts), its cache test written out
            second = second_of(ts)
        session, function, request_id = record.session, record.function, record.request_id
        return (
            "%s.%06d+00:00" % (second.text, ts.microsecond),  # noqa: UP031 - tokenlog.format.iso_timestamp, inlined
            self._text(record.model),
            record.prompt_tokens,
            record.completion_tokens,
            record.total_tokens,
            None if session is None else self._text(session),
            None if function is None else self._text(function),
            latency(record),
            None if request_id is None else self._text(request_id),
            tags_json(record),
            *(self._units(record) if has_units(record) else _NO_UNITS),
        )

    def _units(self, record: UsageRecord) -> tuple[object, ...]:
        tier = record.service_tier
        return (
            record.cached_tokens,
            record.reasoning_tokens,
            record.audio_seconds,
            record.connector_tokens,
            calls_json(record),
            record.pages,
            None if tier is None else self._text(tier),
            record.cost_usd,
        )

    def _text(self, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            value.encode()
        except UnicodeEncodeError:  # SQLite text is UTF-8; a lone surrogate has no UTF-8 form
            warn(f"a row for {self.path} holds text that is not valid Unicode; it is stored escaped")
            return value.encode("utf-8", "backslashreplace").decode()
        return value

    def _after_fork_in_child(self) -> None:
        # SQLite connections must not cross a fork; closing it here could disturb the parent's.
        self._lock = threading.Lock()
        self._queue = threading.Condition(threading.Lock())
        self._waiting = []  # rows of the parent's threads: the parent commits them
        self._leading = False
        if self._connection is not None:
            _abandoned.append(self._connection)
            self._connection = None


def _busy(exc: BaseException | None) -> bool:
    """True for SQLite's "database is locked" or "busy": another connection holds the write lock."""
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is None or not isinstance(exc, sqlite3.OperationalError):
        return False
    return "locked" in str(exc) or "busy" in str(exc)
