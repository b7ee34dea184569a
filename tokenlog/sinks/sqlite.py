"""SqliteSink: rows in a SQLite table, shared by any number of threads and processes."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from .._fork import reset_after_fork
from ..errors import SinkError, TokenlogWarning
from ..record import UsageRecord
from ._fields import FIELDS, iso_timestamp, latency, tags_json

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
    tags TEXT NOT NULL DEFAULT '{{}}'
)"""
_Row = tuple[str, "str | None", int, int, int, "str | None", "str | None", "float | None", "str | None", str]
_abandoned: list[object] = []  # connections inherited across fork: never used, never closed, in the child


class SqliteSink:
    """Inserts one row per record into ``table`` (default ``usage``) of a SQLite database.

    Columns: ``timestamp`` (TEXT, ISO 8601 UTC with microseconds, as in the CSV), ``model``,
    ``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``session``, ``function``,
    ``latency_ms`` (REAL), ``request_id`` and ``tags`` (TEXT holding a JSON object), with indexes
    on ``timestamp`` and ``model``. The table and indexes are created if missing.

    The database runs in WAL mode, so readers never block writers. Each write is one
    ``BEGIN IMMEDIATE`` transaction; a writer that finds the database busy waits up to
    ``timeout`` seconds, then retries up to ``retries`` times before it gives up with
    :class:`~tokenlog.SinkError` (and tokenlog keeps the rows for later). A row is committed
    when :meth:`write` returns. Text that is not valid Unicode (a lone surrogate) is stored
    with a backslash escape, with a warning.

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
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        reset_after_fork(self)

    def __repr__(self) -> str:
        return f"SqliteSink({self.path!r}, table={self.table!r})"

    def write(self, record: UsageRecord) -> None:
        """Insert one row; raise :class:`~tokenlog.SinkError` if it cannot be committed."""
        self.write_many((record,))

    def write_many(self, records: Iterable[UsageRecord]) -> None:
        """Insert rows in order, in one transaction: all of them or none."""
        rows = [self._row(record) for record in records]
        if rows:
            with self._lock:
                self._with_retries(lambda connection: self._insert_rows(connection, rows))

    def flush(self) -> None:
        """Nothing is buffered: every row is committed when :meth:`write` returns."""

    def close(self) -> None:
        """Close the connection; a later :meth:`write` opens it again."""
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- the transaction -----------------------------------------------------------------------

    def _with_retries(self, action: Callable[[sqlite3.Connection], None]) -> None:
        import sqlite3

        delay = 0.01
        for attempt in range(self.retries + 1):
            try:
                action(self._connect())
                return
            except sqlite3.OperationalError as exc:
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy:
                    self._drop_connection()
                if not busy or attempt == self.retries:
                    raise SinkError(f"cannot write to {self.path} (table {self.table}): {exc}") from exc
            except sqlite3.Error as exc:
                self._drop_connection()
                raise SinkError(f"cannot write to {self.path} (table {self.table}): {exc}") from exc
            time.sleep(delay)
            delay = min(delay * 4, 1.0)

    def _insert_rows(self, connection: sqlite3.Connection, rows: list[_Row]) -> None:
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
                connection.execute(_SCHEMA.format(table=self.table))
                self._check_columns(connection)
                connection.execute(f'CREATE INDEX IF NOT EXISTS "{self.table}_timestamp" ON "{self.table}" (timestamp)')
                connection.execute(f'CREATE INDEX IF NOT EXISTS "{self.table}_model" ON "{self.table}" (model)')
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _check_columns(self, connection: sqlite3.Connection) -> None:
        found = [row[1] for row in connection.execute(f'PRAGMA table_info("{self.table}")')]
        missing = [name for name in FIELDS if name not in found]
        if missing:
            raise SinkError(
                f"{self.path} already has a table {self.table!r} with the columns {found}, without {missing}; "
                "pass another table= to SqliteSink, or another database"
            )

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # a broken connection may refuse to close; drop it all the same
                self._connection.close()
            self._connection = None

    # -- the row -------------------------------------------------------------------------------

    def _row(self, record: UsageRecord) -> _Row:
        return (
            iso_timestamp(record),
            self._text(record.model),
            record.prompt_tokens,
            record.completion_tokens,
            record.total_tokens,
            self._text(record.session),
            self._text(record.function),
            latency(record),
            self._text(record.request_id),
            tags_json(record),
        )

    def _text(self, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            value.encode()
        except UnicodeEncodeError:  # SQLite text is UTF-8; a lone surrogate has no UTF-8 form
            warnings.warn(
                f"a row for {self.path} holds text that is not valid Unicode; it is stored escaped",
                TokenlogWarning,
                stacklevel=5,
            )
            return value.encode("utf-8", "backslashreplace").decode()
        return value

    def _after_fork_in_child(self) -> None:
        # SQLite connections must not cross a fork; closing it here could disturb the parent's.
        self._lock = threading.Lock()
        if self._connection is not None:
            _abandoned.append(self._connection)
            self._connection = None
