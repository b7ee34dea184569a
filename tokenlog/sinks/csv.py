"""CsvSink: the default sink, one CSV file that any number of processes can append to.

Every append goes through :class:`~tokenlog._append.LockedAppendFile` (an exclusive OS
lock held for that one append); under the lock this sink looks at the file (empty? which
header? does it end with a newline?) and composes the header and the rows.
"""

from __future__ import annotations

import functools
import os
from codecs import BOM_UTF8 as _BOM
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from .. import format as _format
from .._append import AppendState, LockedAppendFile
from ..errors import warn
from ..format import DEFAULT_FILE, EXTRA_COLUMNS, MANDATORY_COLUMNS, second_of
from ..record import RecordValues, UsageRecord, trusted_record
from ._cut import end_cut_line
from ._fields import calls_json, iso_timestamp, tags_json
from .base import flush_at_exit

__all__ = ["EXTRA_COLUMNS", "MANDATORY_COLUMNS", "CsvSink"]


_HEAD_BYTES = 65536


def _quote(value: str) -> str:
    """RFC 4180: quote a field that holds a comma, a quote or a line break."""
    if '"' in value or "," in value or "\n" in value or "\r" in value:
        return '"' + value.replace('"', '""') + '"'
    return value


def _text(value: str | None) -> str:
    return "" if value is None else _quote(value)


def _number(value: float | None) -> str:
    """A unit's cell: empty when the response did not say, else the number as Python writes it (``12``, ``2.5``)."""
    return "" if value is None else repr(value)


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def _guard(value: str | None) -> str | None:
    """``value`` with a ``'`` before it if a spreadsheet would read it as a formula (or it starts with ``'``)."""
    return "'" + value if value is not None and value.startswith(_FORMULA_STARTS) else value


_CELLS: dict[str, Callable[[UsageRecord], str]] = {
    "TimestampUTC": iso_timestamp,
    "Model": lambda r: _quote(r.model),
    "PromptTokens": lambda r: str(r.prompt_tokens),
    "CompletionTokens": lambda r: str(r.completion_tokens),
    "TotalTokens": lambda r: str(r.total_tokens),
    "Session": lambda r: _text(r.session),
    "Function": lambda r: _text(r.function),
    "LatencyMs": lambda r: "" if r.latency_ms is None else f"{r.latency_ms:.3f}",
    "RequestId": lambda r: _text(r.request_id),
    "Tags": lambda r: _quote(tags_json(r)) if r.tags else "",
    "CachedTokens": lambda r: _number(r.cached_tokens),
    "ReasoningTokens": lambda r: _number(r.reasoning_tokens),
    "AudioSeconds": lambda r: _number(r.audio_seconds),
    "ConnectorTokens": lambda r: _number(r.connector_tokens),
    "ConnectorCalls": lambda r: _text(calls_json(r)),
    "Pages": lambda r: _number(r.pages),
    "ServiceTier": lambda r: _text(r.service_tier),
    "CostUSD": lambda r: _number(r.cost_usd),
}
_GUARDED_CELLS = {  # formula_guard=True: the text a record's caller chose, guarded (tags are JSON: never a formula)
    **_CELLS,
    "Model": lambda r: _quote(_guard(r.model) or ""),
    "Session": lambda r: _text(_guard(r.session)),
    "Function": lambda r: _text(_guard(r.function)),
    "RequestId": lambda r: _text(_guard(r.request_id)),
    "ServiceTier": lambda r: _text(_guard(r.service_tier)),
}


_model_cells: dict[str, bytes] = {}
"""A model name as its CSV cell, encoded: a handful of models fill millions of rows."""


def _model_cell(model: str) -> bytes | None:
    """``model`` quoted if needed and encoded; ``None`` if it is not valid Unicode (the careful path warns)."""
    cell = _model_cells.get(model)
    if cell is None:
        try:
            cell = _quote(model).encode()
        except UnicodeEncodeError:
            return None
        if len(_model_cells) < 1024:  # made-up model names must not grow this without bound
            _model_cells[model] = cell
    return cell


def _mandatory_row(record: UsageRecord, newline: bytes) -> bytes | None:
    """One row of the five mandatory columns, written out for speed (the common case).

    ``None`` if the model is not valid Unicode: :func:`format_row` then writes it escaped, with a warning.
    """
    return _row_of(
        record.timestamp, record.model, record.prompt_tokens, record.completion_tokens, record.total_tokens, newline
    )


def _row_of(ts: datetime, model: str, prompt: int, completion: int, total: int, newline: bytes) -> bytes | None:
    cell = _model_cells.get(model) or _model_cell(model)
    if cell is None:
        return None
    second = _format.last_second
    if not second.start <= ts < second.end:  # second_of(ts), its cache test written out
        second = second_of(ts)
    return b"%b.%06d+00:00,%b,%d,%d,%d%b" % (second.data, ts.microsecond, cell, prompt, completion, total, newline)


def _empty(record: UsageRecord) -> str:
    return ""


def format_row(
    record: UsageRecord,
    columns: Sequence[str] = MANDATORY_COLUMNS,
    newline: str = "\n",
    *,
    formula_guard: bool = False,
) -> str:
    """One CSV line (with its line end) for ``record`` in the given column layout.

    A column tokenlog does not know (a team's own ``Notes``, another version's column) is left empty.
    """
    cells = _GUARDED_CELLS if formula_guard else _CELLS
    return ",".join([cells.get(column, _empty)(record) for column in columns]) + newline


def _plain_end(layout: Sequence[str], newline: str, formula_guard: bool) -> bytes | None:
    """What follows the five mandatory cells of every row in ``layout``, if nothing else is filled in; else None.

    ``layout`` is the five mandatory columns, then only columns tokenlog does not know (left empty): the row
    is the mandatory row, then a comma for each. Chosen once per layout, so the per-row path does not branch.
    """
    rest = layout[len(MANDATORY_COLUMNS) :]
    if formula_guard or tuple(layout[: len(MANDATORY_COLUMNS)]) != MANDATORY_COLUMNS:
        return None
    if any(column in _CELLS for column in rest):
        return None
    return ("," * len(rest) + newline).encode()


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
    - the file already has another header: if it starts with the five mandatory columns, rows are
      written in the file's own column order, columns tokenlog does not know left empty (one
      warning); otherwise rows go to a side file ``<name>.tokenlog.csv`` next to it (one warning
      naming the header), never misaligned;
    - the file does not end with a line break (a writer was killed mid-line): the next row
      starts on a new line, so it is never glued onto the broken one;
    - the file is deleted: the first write that checks (every 50 ms or 1,000 rows, and
      :meth:`flush`, :meth:`close`, ``tokenlog.flush()``, the end of the program) creates it
      again with its header and writes there the rows that went to the deleted file meanwhile.
      (Checking on every row would cost as much as the write itself: on Linux 6.13+ a ``stat``
      between two writes makes the next one update the file's times in full.)

    ``formula_guard=True`` writes a ``'`` before any text value (model, session, function,
    request id) that starts with ``=``, ``+``, ``-``, ``@``, a tab, a carriage return or ``'``,
    so that a spreadsheet opening the file shows it as text instead of running it as a formula.
    The price: those values are no longer written exactly as given (``=1+2`` becomes ``'=1+2``;
    remove one leading ``'`` to get them back). Off by default: the log is a record of what the
    API said, and tokenlog's own commands read it without ever evaluating anything.

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
        path: str | os.PathLike[str] = DEFAULT_FILE,
        *,
        extra_fields: Iterable[str] = (),
        lock_timeout: float = 5.0,
        formula_guard: bool = False,
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
        self.wants_cost = "CostUSD" in extra
        """Records are priced when they are made, for the ``CostUSD`` column (an optional sink attribute)."""
        self.lock_timeout = lock_timeout
        self.formula_guard = formula_guard
        self._header = (",".join(self.columns) + "\n").encode()
        self._file = LockedAppendFile(self.path, lock_timeout)
        # Read and changed only under the file's lock, in _compose:
        self._layout: tuple[str, ...] | None = None  # None: rows go to the side file
        self._newline = "\n"
        self._row_end = b"\n"  # what follows the mandatory cells of a plain row: empty cells, the line break
        self._plain = False  # rows are the five mandatory cells (then empty ones), unguarded: _mandatory_row
        self._set_layout(self.columns, "\n")
        self._side_sink: CsvSink | None = None
        flush_at_exit(self)

    def __repr__(self) -> str:
        return f"CsvSink({self.path!r})"

    def write(self, record: UsageRecord) -> None:
        """Append one row; raise :class:`~tokenlog.SinkError` if it cannot be stored."""
        # The generation first, then the layout: both are updated under the file lock, layout first.
        file = self._file
        generation = file.generation
        if self._plain:  # the five mandatory columns, no formula guard: written out (the common case)
            data = _mandatory_row(record, self._row_end)
            if data is not None and file.append_known(data, generation, record):
                return
        else:
            layout, newline = self._layout, self._newline
            if layout is not None and file.append_known(self._encode((record,), layout, newline), generation, record):
                return
        self._append((record,))

    def write_fields(self, fields: RecordValues) -> bool:
        """Append the row of a record not built yet; False if not written (the optional sink capability).

        ``fields`` are a :class:`~tokenlog.UsageRecord`'s field values in order. Only for a file
        with the five mandatory columns (then only columns tokenlog does not know, left empty); anything
        else (or a file that needs a look) returns False having written nothing, and tokenlog builds
        the record and calls :meth:`write`.
        Saves building a record per row (0.5 us) when nothing else wants it.
        """
        if not self._plain:
            return False
        file = self._file
        generation = file.generation
        data = _row_of(fields[0], fields[1], fields[2], fields[3], fields[4], self._row_end)
        return data is not None and file.append_known(data, generation, fields)

    def write_many(self, records: Iterable[UsageRecord]) -> None:
        """Append rows in order, all in one locked write."""
        batch = tuple(records)
        if batch:
            self._append(batch)

    def _append(self, records: tuple[UsageRecord, ...]) -> None:
        # Format before taking the lock, for the layout seen last; _compose checks it still holds.
        layout, newline = self._layout, self._newline
        encoded = self._encode(records, layout, newline) if layout is not None and records else b""
        rescued: list[UsageRecord] = []  # rows that went to a file deleted since: _compose adds them first
        compose = functools.partial(self._compose, records, layout, newline, encoded, rescued)
        if not self._file.append(compose):
            self._side().write_many((*rescued, *records))

    def flush(self) -> None:
        """Check that the file the last rows went to is still there; if it was deleted, write them again.

        Nothing is buffered: a row is in the file when :meth:`write` returns. But the fast path checks
        only every 50 ms that the file was not deleted meanwhile (see :class:`CsvSink`); this checks now.
        ``tokenlog.flush()`` and the end of the program call it for every sink tokenlog writes to.
        """
        if self._file.unchecked():
            self._append(())

    def take_unwritten(self) -> list[UsageRecord]:
        """Rows that went to a file deleted since and could not be written again yet; they are the caller's now.

        An optional sink capability: at exit, after :meth:`flush`, tokenlog saves them to its fallback file.
        """
        return [_as_record(item) for item in self._file.take_orphans()]

    def close(self) -> None:
        """Check the file as :meth:`flush` does, then close it; a later :meth:`write` opens it again."""
        try:
            self.flush()
        finally:
            self._file.close()
            if self._side_sink is not None:
                self._side_sink.close()

    # -- what one append writes ----------------------------------------------------------------

    def _compose(
        self,
        records: tuple[UsageRecord, ...],
        layout: tuple[str, ...] | None,
        newline: str,
        encoded: bytes,
        rescued: list[UsageRecord],
        state: AppendState,
    ) -> bytes | None:
        """Header and rows for the file as it is now; ``None`` if its header sends rows elsewhere.

        ``encoded`` is ``records`` formatted for ``layout`` and ``newline`` before the lock was taken.
        Rows that went to a file deleted since (``state.rescued``) come first; ``rescued`` gets them.
        """
        if state.rescued:
            rescued.extend(_as_record(item) for item in state.rescued)
            records, layout = (*rescued, *records), None  # layout None: encode them all below
        if state.size and state.new_file:
            self._inspect(state)
        if self._layout is None:
            return None
        if not records:
            return b""  # a check (flush) found nothing to write again
        if state.size == 0:
            self._set_layout(self.columns, "\n")
            prefix = self._header
        elif state.ends_with_newline():
            prefix = b""
        else:
            prefix = end_cut_line(state.fd, state.size, self._newline)  # a writer died mid-line: end that line
        if self._layout != layout or self._newline != newline:
            encoded = self._encode(records, self._layout, self._newline)  # the file changed what a row looks like
        return prefix + encoded

    def _inspect(self, state: AppendState) -> None:
        """Check the header of a file we have not seen yet."""
        head = os.pread(state.fd, _HEAD_BYTES, 0)
        end = head.find(b"\n")
        if end < 0:
            if state.size <= len(head) and self._header.startswith(head.removeprefix(_BOM)):
                state.cut(0)  # only a header cut short by a killed writer: start afresh
                return
            first = head
        else:
            first = head[:end]
        newline = "\r\n" if first.endswith(b"\r") else "\n"
        found = first.removeprefix(_BOM).rstrip(b"\r").decode("utf-8", "replace")
        columns = tuple(found.split(","))
        if columns == self.columns:
            self._set_layout(self.columns, newline)
        elif columns[: len(MANDATORY_COLUMNS)] == MANDATORY_COLUMNS and len(set(columns)) == len(columns):
            self._set_layout(columns, newline)
            unknown = [column for column in columns if column not in _CELLS]
            empty = f"; its columns tokenlog does not know ({', '.join(unknown)}) are left empty" if unknown else ""
            _warn(
                f"{self.path} has the header {found[:200]!r}; this sink was asked for {','.join(self.columns)!r}, "
                f"so its rows follow the file's columns{empty}"
            )
        else:
            self._set_layout(None, newline)
            starts = columns[: len(MANDATORY_COLUMNS)] == MANDATORY_COLUMNS
            why = "repeats a column" if starts else f"does not start with {','.join(MANDATORY_COLUMNS)}"
            _warn(
                f"{self.path} has the header {found[:200]!r}, which {why}; rows go to {self._side_path()} "
                "instead, so that no row is misaligned (a header that starts with those five columns, each "
                "column named once, is appended to)"
            )

    def _set_layout(self, layout: tuple[str, ...] | None, newline: str) -> None:
        """What rows look like in this file from now on (called under the file's lock)."""
        end = None if layout is None else _plain_end(layout, newline, self.formula_guard)
        self._layout, self._newline, self._row_end = layout, newline, end or newline.encode()
        self._plain = end is not None

    def _encode(self, records: tuple[UsageRecord, ...], layout: tuple[str, ...], newline: str) -> bytes:
        guard = self.formula_guard
        ending = _plain_end(layout, newline, guard)
        if ending is not None:
            rows: list[bytes] = []
            for record in records:
                row = _mandatory_row(record, ending)
                if row is None:
                    break  # not valid Unicode: the careful path below escapes it
                rows.append(row)
            else:
                return b"".join(rows)
        text = "".join([format_row(record, layout, newline, formula_guard=guard) for record in records])
        try:
            return text.encode()
        except UnicodeEncodeError:
            _warn(f"a row for {self.path} holds text that is not valid Unicode; it is written escaped")
            return text.encode("utf-8", "backslashreplace")

    # -- helpers -----------------------------------------------------------------------------

    def _side_path(self) -> str:
        root, ext = os.path.splitext(self.path)
        return f"{root}.tokenlog{ext or '.csv'}"

    def _side(self) -> CsvSink:
        if self._side_sink is None:
            self._side_sink = CsvSink(
                self._side_path(),
                extra_fields=self.extra_fields,
                lock_timeout=self.lock_timeout,
                formula_guard=self.formula_guard,
            )
        return self._side_sink


def _as_record(item: object) -> UsageRecord:
    """An item this sink appended: a record, or the fields of one (:meth:`CsvSink.write_fields`)."""
    return item if isinstance(item, UsageRecord) else trusted_record(*item)  # type: ignore[misc]


def _warn(message: str) -> None:
    warn(message)
