"""Follow a usage log as it grows: what every row since a moment spent, read incrementally.

A shared budget (``tokenlog.Budget(shared=PATH)``) asks, before each call, what the whole team has spent so
far. :class:`LogTail` answers from what it read before plus what was appended since: it remembers how far it
read (a byte offset in a CSV or JSONL log, the last row id in an SQLite log) and looks at the file's
``stat`` first, so a check when nothing was appended costs one or two ``stat`` calls, not a scan. New bytes
are read under the lock every append takes (:func:`tokenlog._append.read_appended`), and only whole lines
count. A log that was replaced or cut (``tokenlog merge -o``, ``tokenlog repair``, a new file at the same
path) is read again from its start.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from .._append import read_appended
from ..format import ALL_COLUMNS, MANDATORY_COLUMNS, RECORD_KEYS, utc_timestamp
from ..pricing import PriceTable, default_prices
from .read import UNIT_COLUMNS, LogFileError, log_format, record_cells, row_cost
from .read import _connect as _connect_read_only

__all__ = ["LogTail", "Spent"]


@dataclass(frozen=True)
class Spent:
    """What the rows of a log spent: calls, total tokens, the cost of the priced ones, the unpriced calls."""

    calls: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0


_NOTHING = Spent()


class LogTail:
    """The totals of one log's rows since ``since`` (a UTC timestamp as tokenlog writes them; ``None``: all).

    :meth:`refresh` reads what was appended since the last call and returns the totals. A missing file is
    a log with no rows yet. Raises :class:`~tokenlog.logs.read.LogFileError` when the file cannot be read
    or is not a usage log. Not thread-safe: its owner serialises the calls.
    """

    def __init__(self, path: str | os.PathLike[str], since: str | None = None) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.since = since
        self.spent = _NOTHING
        self._format: str | None = None
        self._seen: tuple[int, ...] | None = None  # what stat said when we last read
        self._offset = 0  # CSV/JSONL: bytes read; SQLite: the last row id read
        self._columns: tuple[int, ...] | None = None  # CSV: where the needed cells are
        self._database: tuple[int, ...] = ()  # SQLite: the database file's identity when last read

    def unchanged(self) -> bool:
        """True if the log is as it was when last read: one ``stat``, nothing read (safe from any thread)."""
        try:
            return self._look() == self._seen
        except LogFileError:
            return False

    def refresh(self) -> Spent:
        """The totals, with whatever was appended since the last call counted."""
        seen = self._look()
        if seen == self._seen:
            return self.spent  # nothing appended: the check was that stat
        if not seen:
            self._restart()  # no file (yet, or any more): no rows
            self._seen = seen  # and the next check is one stat, until a file appears
            return self.spent
        if self._format is None:
            if seen[2] == 0:
                return self.spent  # an empty file: its format is known once a writer starts it
            self._format = log_format(self.path)
            if self._format == "sqlite":
                return self._refresh_sqlite(self._look())
        if self._format == "sqlite":
            return self._refresh_sqlite(seen)
        if self._seen is not None and (seen[:2] != self._seen[:2] or seen[2] < self._offset):
            self._restart()  # another file now, or cut: read it all again
        self._read_appended()
        return self.spent

    def _look(self) -> tuple[int, ...]:
        """What ``stat`` says of the file whose change means new rows: the log itself, or for SQLite its WAL (a
        commit writes the WAL; a database in another journal mode has none, then the database itself)."""
        if self._format == "sqlite":
            return _stat_of(self.path + "-wal") or _stat_of(self.path)
        return _stat_of(self.path)

    def _restart(self) -> None:
        if self.spent != _NOTHING:
            self.spent = _NOTHING  # kept while nothing changes: a caller compares it by identity
        self._seen, self._offset, self._columns = None, 0, None

    # -- CSV and JSONL -------------------------------------------------------------------------------

    def _read_appended(self) -> None:
        start = self._offset - 1 if self._offset else 0  # the last byte read too: it must still end a line
        try:
            stat, data = read_appended(self.path, start)
        except OSError as exc:
            raise LogFileError(f"{self.path}: cannot read: {exc.strerror or exc}") from None
        if self._offset:
            if data[:1] != b"\n":  # rewritten in place, larger than before: read it all again
                self._restart()
                self._read_appended()
                return
            data = data[1:]
        end = data.rfind(b"\n") + 1  # whole lines only: a row being written is read next time
        text = data[:end].decode("utf-8", errors="replace")
        if self._offset == 0:
            text = text.removeprefix("\ufeff")
        lines = text.splitlines()
        if self._format == "csv" and self._columns is None and lines:
            self._columns = self._header(lines[0])
            lines = lines[1:]
        rows = csv.reader(lines) if self._format == "csv" else (self._jsonl_cells(line) for line in lines)
        self._add(rows)
        self._offset += end
        # Everything read: the next check is a stat. A line still being written: read again next time.
        complete = stat.st_size == self._offset
        self._seen = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns) if complete else None

    def _add(self, rows: Iterable[list[str]]) -> None:
        """Count ``rows`` (cells in the log's columns) into :attr:`spent`."""
        prices = default_prices()
        calls, tokens, cost, unpriced = 0, 0, 0.0, 0
        for cells in rows:
            counted = self._count(cells, prices)
            if counted is None:
                continue
            calls += 1
            tokens += counted[0]
            if counted[1] is None:
                unpriced += 1
            else:
                cost += counted[1]
        spent = self.spent
        self.spent = Spent(
            spent.calls + calls, spent.total_tokens + tokens, spent.cost_usd + cost, spent.unpriced_calls + unpriced
        )

    def _header(self, line: str) -> tuple[int, ...]:
        header = next(csv.reader([line]), [])
        missing = [column for column in MANDATORY_COLUMNS if column not in header]
        if missing:
            raise LogFileError(f"{self.path}: the header {line[:200]!r} has no {', '.join(missing)} column")
        return tuple(header.index(c) if c in header else -1 for c in (*MANDATORY_COLUMNS, *UNIT_COLUMNS))

    @staticmethod
    def _jsonl_cells(line: str) -> list[str]:
        try:
            item = json.loads(line)
        except ValueError:
            return []
        if not isinstance(item, dict):
            return []
        return record_cells([item.get(key) for key in RECORD_KEYS])

    def _count(self, cells: list[str], prices: PriceTable) -> tuple[int, float | None] | None:
        """A row's total tokens and cost (``None``: no price), or ``None`` if it is not a usage row in range."""
        where = self._columns if self._format == "csv" else _IN_RECORD
        if where is None:
            return None
        try:
            stamp, model, prompt, completion, total = (cells[i] for i in where[:5])
            counts = int(prompt), int(completion), int(total)
        except (IndexError, ValueError):
            return None
        if min(counts) < 0:
            return None
        if self.since is not None:
            if len(stamp) != 32 or stamp[26:] != "+00:00":
                stamp = utc_timestamp(stamp) or ""
            if stamp < self.since:
                return None
        units = [cells[i] if 0 <= i < len(cells) else "" for i in where[5:]]
        return counts[2], row_cost(prices, model, counts[0], counts[1], units, stamp, False)

    # -- SQLite --------------------------------------------------------------------------------------

    def _refresh_sqlite(self, seen: tuple[int, ...]) -> Spent:
        if not os.path.exists(self.path):
            self._restart()  # deleted: no rows until a writer makes it again
            return self.spent
        database = _stat_of(self.path)
        if self._seen is not None and database[:2] != self._database[:2]:
            self._restart()  # another file at the path now
        self._database = database
        connection = _connect_read_only(self.path)
        try:
            present = {row[1] for row in connection.execute("PRAGMA table_info(usage)")}
            if not present:
                self._seen = seen
                return self.spent  # no table yet: the first writer makes it
            last = connection.execute("SELECT max(rowid) FROM usage").fetchone()[0] or 0
            if last < self._offset:
                self._restart()  # rows went: the log was rewritten
            names = ", ".join(key if key in present else "NULL" for key in RECORD_KEYS)
            found = connection.execute(
                f"SELECT rowid, {names} FROM usage WHERE rowid > ? ORDER BY rowid", (self._offset,)
            ).fetchall()  # names from RECORD_KEYS only
        except sqlite3.Error as exc:
            raise LogFileError(f"{self.path}: cannot read the SQLite log: {exc}") from None
        finally:
            connection.close()
        if found:
            self._add(record_cells(row[1:]) for row in found)
            self._offset = found[-1][0]
        self._seen = seen
        return self.spent


_IN_RECORD = tuple(ALL_COLUMNS.index(column) for column in (*MANDATORY_COLUMNS, *UNIT_COLUMNS))
"""Where the needed cells are in a row made from a JSONL line or an SQLite row (a record's fields, in order)."""


def _stat_of(path: str) -> tuple[int, ...]:
    """A file's identity, size and time (``()`` if it is missing): they change when a row is written."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise LogFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
