"""Read a usage log in any of tokenlog's formats (CSV, JSONL, SQLite) as rows of CSV cells.

Every format reads the same way, so the commands that read logs (``report``, ``merge``) have one
code path: :func:`open_log` finds the format with :func:`log_format` (the test every command uses: the
file's first bytes, its extension, its first line; anything else is refused alike),
:attr:`UsageLog.columns` names the columns in CSV terms (``TimestampUTC``, ``Model``, ...), and
:meth:`UsageLog.rows` yields each row as a list of strings, as the CSV file would hold them. A JSONL
line or an SQLite row with the keys of :class:`~tokenlog.UsageRecord` becomes the same cells the
CSV sink would write for it. Reading streams: one row at a time, whatever the file's size.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "usage.jsonl"
>>> _ = path.write_text('{"timestamp": "2026-06-01T10:00:00.000000+00:00", "model": "m", '
...                     '"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}\\n')
>>> log = open_log(path)
>>> log.format, list(log.rows())[0][:5]
('jsonl', ['2026-06-01T10:00:00.000000+00:00', 'm', '3', '2', '5'])
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from ..format import ALL_COLUMNS, MANDATORY_COLUMNS, RECORD_KEYS, SUFFIXES
from ..pricing import PriceTable
from ..record import BilledUnits

__all__ = [
    "EXPECTED",
    "UNIT_COLUMNS",
    "LogFileError",
    "UsageLog",
    "add_row_units",
    "amount",
    "connector_calls",
    "log_format",
    "open_log",
    "record_cells",
    "row_cost",
]

_SQLITE_MAGIC = b"SQLite format 3\x00"
_FIRST_LINE = 64 * 1024  # enough for any header or record; a longer first line is not a usage log's

EXPECTED = (
    f"expected a usage log: CSV with the header {','.join(MANDATORY_COLUMNS)}, JSONL (one JSON object a line, "
    "as JsonlSink writes) or SQLite (a table 'usage', as SqliteSink writes)"
)
"""What every reading command says it expected when a file is none of the formats the sinks write."""


UNIT_COLUMNS = ("CachedTokens", "Pages", "AudioSeconds", "ConnectorCalls", "CostUSD", "ServiceTier")
"""The columns of units that prices depend on, beyond the tokens, in the order :func:`add_row_units` takes them."""


def add_row_units(billed: BilledUnits, cells: Sequence[str], prompt: int, completion: int) -> None:
    """Add one row's units to ``billed``: its cells of :data:`UNIT_COLUMNS` (empty where the log has no such
    column), with its prompt and completion tokens. A cell that is not a unit's value counts as empty; a
    ``CostUSD`` the row was priced at when recorded counts in ``recorded_calls`` and ``recorded_cost``."""
    cached, pages, seconds, calls, cost, tier = cells
    billed.add(
        int(cached) if cached.isdigit() else None,
        int(pages) if pages.isdigit() else None,
        amount(seconds),
        connector_calls(calls),
        (prompt, completion) if tier == "batch" else None,  # served by the batch API: its own price
    )
    recorded = amount(cost)
    if recorded is not None:
        billed.recorded_calls += 1
        billed.recorded_cost += recorded


def row_cost(
    prices: PriceTable, model: str, prompt: int, completion: int, unit_cells: Sequence[str], when: str, reprice: bool
) -> float | None:
    """One row's cost: the ``CostUSD`` it was priced at when recorded (unless ``reprice``), else what ``prices`` say
    of its tokens and units (``unit_cells``: its cells of :data:`UNIT_COLUMNS`) on the day of ``when``; ``None``
    when the model or a unit has no price."""
    billed = BilledUnits()
    add_row_units(billed, unit_cells, prompt, completion)
    if billed.recorded_calls and not reprice:
        return billed.recorded_cost
    return prices.cost(model, prompt, completion, billed, when or None)


def amount(cell: str) -> float | None:
    """A cell's non-negative finite number (seconds, USD), else ``None``."""
    try:
        value = float(cell) if cell else None
    except ValueError:
        return None
    return value if value is not None and 0 <= value < float("inf") else None


def connector_calls(cell: str) -> dict[str, int] | None:
    """A ``ConnectorCalls`` cell as a mapping of connector name to a count, else ``None``."""
    try:
        value = json.loads(cell) if cell else None
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return {str(k): v for k, v in value.items() if type(v) is int and v >= 0}


class LogFileError(Exception):
    """A log that cannot be read at all: missing, unreadable, or not a usage log."""


class UsageLog:
    """One usage log, opened for reading. Iterate :meth:`rows`; the other attributes describe it.

    ``columns`` are CSV column names, the five mandatory ones among them. ``line`` is the line
    (CSV, JSONL) or row id (SQLite) of the row :meth:`rows` yielded last, for messages.
    ``problem`` says why that row is empty (a JSONL line that is not a JSON object, a CSV line the
    csv module refused), else ``None``.
    """

    def __init__(self, path: str, fmt: str, columns: Sequence[str], errors: str) -> None:
        self.path = path
        self.format = fmt
        self.columns = tuple(columns)
        self.line = 0
        self.problem: str | None = None
        self._errors = errors

    def __repr__(self) -> str:
        return f"<UsageLog {self.path!r} ({self.format})>"

    def index(self, column: str) -> int | None:
        """The position of ``column`` in each row, or ``None`` if this log has no such column."""
        return self.columns.index(column) if column in self.columns else None

    def rows(self) -> Iterator[list[str]]:
        """Each data row as a list of cells, in the order of :attr:`columns`."""
        if self.format == "sqlite":
            return self._sqlite_rows()
        if self.format == "jsonl":
            return self._jsonl_rows()
        return self._csv_rows()

    def _csv_rows(self) -> Iterator[list[str]]:
        with _open_text(self.path, self._errors) as handle:
            reader = csv.reader(handle)
            if next(reader, None) is None:
                return
            while True:
                ended = reader.line_num  # a row starts on the line after the last one read
                try:
                    for row in reader:
                        self.line, ended = ended + 1, reader.line_num
                        yield row
                    return
                except csv.Error as exc:  # the reader goes on with the next line
                    # Python 3.10's csv module refuses NUL (3.11 reads it): say the same thing on both.
                    problem = (
                        "holds a NUL byte or a carriage return, expected neither"
                        if "NUL" in str(exc)
                        else f"is not a CSV row: {exc}"
                    )
                    self.line, self.problem = ended + 1, problem
                    yield []
                    self.problem = None

    def _jsonl_rows(self) -> Iterator[list[str]]:
        with _open_text(self.path, self._errors) as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                self.line = number
                try:
                    item = json.loads(line.rstrip("\r\n"))  # cut short: "Unterminated string"
                except ValueError as exc:
                    item = exc
                if isinstance(item, dict):
                    yield record_cells([item.get(key) for key in RECORD_KEYS])
                else:
                    self.problem = f"is not a JSON object: {item}"
                    yield []
                    self.problem = None

    def _sqlite_rows(self) -> Iterator[list[str]]:
        connection = _connect(self.path)
        try:
            present = {row[1] for row in connection.execute("PRAGMA table_info(usage)")}
            selected = ", ".join(key if key in present else "NULL" for key in RECORD_KEYS)
            for row in connection.execute(f"SELECT rowid, {selected} FROM usage"):  # names from RECORD_KEYS only
                self.line = row[0]
                yield record_cells(row[1:])
        except sqlite3.Error as exc:
            raise LogFileError(f"{self.path}: cannot read the SQLite log: {exc}") from None
        finally:
            connection.close()


def open_log(path: str | os.PathLike[str], *, errors: str = "strict") -> UsageLog:
    """Open a usage log for reading; raise :class:`LogFileError` if it cannot be a usage log.

    ``errors`` is how to decode bytes that are not UTF-8 in text formats (``"strict"`` or
    ``"replace"``). A UTF-8 byte order mark is skipped.
    """
    name = os.fspath(path)
    fmt = log_format(name)
    if fmt == "sqlite":
        _check_sqlite(name)
    if fmt != "csv":
        return UsageLog(name, fmt, ALL_COLUMNS, errors)  # a missing optional column reads as empty cells
    return UsageLog(name, fmt, _csv_header(name, errors), errors)


def log_format(path: str | os.PathLike[str]) -> str:
    """The format of the log at ``path``: ``"csv"``, ``"jsonl"`` or ``"sqlite"``, the one test every command uses.

    A file that starts as an SQLite database is one. Otherwise the extension decides (``.csv``; ``.jsonl``,
    ``.ndjson``; ``.db``, ``.sqlite``, ``.sqlite3``), and without a known one the first line: a JSON object
    is JSONL, a line with the five mandatory columns (or an empty file) is CSV. Anything else (a JSON
    document, binary data, a ``.db`` that is not SQLite) raises :class:`LogFileError`, whose message says what
    the file is and ends with :data:`EXPECTED`. A ``.csv`` or ``.jsonl`` file is not checked further here:
    ``validate`` names what is wrong in it, line by line.
    """
    name = os.fspath(path)
    if os.path.isdir(name):
        raise LogFileError(f"{name}: is a directory, expected a usage log file")
    try:
        with open(name, "rb") as handle:
            first = handle.readline(_FIRST_LINE)
    except FileNotFoundError:
        raise LogFileError(f"{name}: no such file") from None
    except OSError as exc:
        raise LogFileError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if first.startswith(_SQLITE_MAGIC):
        return "sqlite"
    suffix = Path(name).suffix.lower()
    fmt = SUFFIXES.get(suffix)
    if fmt == "sqlite" and first:
        raise LogFileError(f"{name}: a {suffix} file that is not an SQLite database; {EXPECTED}")
    if fmt is not None:
        return fmt
    return _sniff(name, first)


def _sniff(name: str, first: bytes) -> str:
    """The format of a file without a known extension, from its first line."""
    try:
        text = first.decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        text = "\0"
    if "\0" in text:
        raise LogFileError(f"{name}: binary data, not text; {EXPECTED}")
    if not text:
        return "csv"  # an empty file: a log with no rows yet
    if text.startswith(("{", "[")):
        try:
            item = json.loads(text)
        except ValueError:
            item = None
        if isinstance(item, dict):
            return "jsonl"
        raise LogFileError(f"{name}: a JSON document, not one JSON object a line; {EXPECTED}")
    header = next(csv.reader([text]), [])
    if all(column in header for column in MANDATORY_COLUMNS):
        return "csv"
    raise LogFileError(f"{name}: its first line {text[:80]!r} is not a usage log's header; {EXPECTED}")


def _open_text(path: str, errors: str) -> TextIO:
    return open(path, encoding="utf-8-sig", errors=errors, newline="")


def _csv_header(path: str, errors: str) -> tuple[str, ...]:
    try:
        with _open_text(path, errors) as handle:
            header = next(csv.reader(handle), None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise LogFileError(f"{path}: the header line cannot be read ({exc}); {EXPECTED}") from None
    if header is None:
        return MANDATORY_COLUMNS  # an empty file: a log with no rows yet
    missing = [column for column in MANDATORY_COLUMNS if column not in header]
    if missing:
        raise LogFileError(
            f"{path}: the header {','.join(header)[:200]!r} has no {', '.join(missing)} column: not a usage log "
            f"(expected {','.join(MANDATORY_COLUMNS)})"
        )
    return tuple(header)


def _connect(path: str) -> sqlite3.Connection:
    try:
        return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise LogFileError(f"{path}: cannot open the SQLite log: {exc}") from None


def _check_sqlite(path: str) -> None:
    connection = _connect(path)
    try:
        present = {row[1] for row in connection.execute("PRAGMA table_info(usage)")}
    except sqlite3.Error as exc:
        raise LogFileError(f"{path}: not a readable SQLite database ({exc}); {EXPECTED}") from None
    finally:
        connection.close()
    missing = [key for key in RECORD_KEYS[: len(MANDATORY_COLUMNS)] if key not in present]
    if missing:
        what = "no table 'usage'" if not present else f"the table 'usage' has no {', '.join(missing)} column"
        raise LogFileError(f"{path}: {what}: not a tokenlog SQLite log; {EXPECTED}")


_LATENCY, _TAGS, _CALLS = (RECORD_KEYS.index(key) for key in ("latency_ms", "tags", "connector_calls"))


def record_cells(values: Sequence[object]) -> list[str]:
    """The CSV cells for one record's values, given in the order of :data:`RECORD_KEYS`."""
    cells = ["" if value is None else str(value) for value in values]  # True, 1.5: not counts, as in CSV
    latency = values[_LATENCY]
    if isinstance(latency, (int, float)) and not isinstance(latency, bool):
        cells[_LATENCY] = f"{latency:.3f}"
    cells[_TAGS] = _tags_cell(values[_TAGS])
    cells[_CALLS] = _tags_cell(values[_CALLS])
    return cells


def _tags_cell(tags: object) -> str:
    """Tags as the CSV sink writes them: compact JSON with sorted keys, empty when there are none."""
    if isinstance(tags, str):  # SQLite keeps them as JSON text
        try:
            tags = json.loads(tags) if tags else None
        except ValueError:
            return str(tags)
    if not tags:
        return ""
    return json.dumps(tags, sort_keys=True, separators=(",", ":"))
