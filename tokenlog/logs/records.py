"""``tokenlog.read_log``: the rows of usage logs (CSV, JSONL, SQLite) as :class:`~tokenlog.UsageRecord` objects,
streamed, and as a pandas or polars data frame.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "usage.csv"
>>> _ = path.write_text("TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\\n"
...                     "2026-06-01T10:00:00.000000+00:00,mistral-small,12,5,17\\n")
>>> [(r.model, r.total_tokens, r.timestamp.isoformat()) for r in read_log(path)]
[('mistral-small', 17, '2026-06-01T10:00:00+00:00')]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from ..format import ALL_COLUMNS, RECORD_KEYS, utc_timestamp
from ..record import FIELD_NAMES, UsageRecord
from .read import amount, connector_calls, open_log

__all__ = ["LogRecords", "read_log"]

PathLike = str | os.PathLike[str]

_COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
_INTS = ("cached_tokens", "reasoning_tokens", "connector_tokens", "pages")
_FLOATS = ("latency_ms", "audio_seconds", "cost_usd")
_TEXTS = ("session", "function", "request_id", "service_tier")
_COLUMN_OF = dict(zip(RECORD_KEYS, ALL_COLUMNS, strict=True))
"""Each record field and the CSV column that holds it."""


class LogRecords:
    """The rows of one or more logs, read again from the files each time it is iterated (nothing is held).

    Rows that are not usage rows (a count that is not a non-negative integer, a timestamp without a UTC offset, a
    line cut short) are skipped: after an iteration, :attr:`skipped` says how many, and :attr:`problems` names
    the first ones as ``FILE:LINE: why``.
    """

    def __init__(self, paths: Iterable[PathLike], since: str | None, until: str | None) -> None:
        self.paths = [os.fspath(path) for path in paths]
        self.since = since
        self.until = until
        self.skipped = 0
        self.problems: list[str] = []
        for path in self.paths:
            open_log(path, errors="replace")  # a file that is not a usage log: refused now, not halfway

    def __repr__(self) -> str:
        return f"<LogRecords {self.paths!r}>"

    def __iter__(self) -> Iterator[UsageRecord]:
        self.skipped, self.problems = 0, []
        for path in self.paths:
            log = open_log(path, errors="replace")
            where = {name: log.index(_COLUMN_OF[name]) for name in FIELD_NAMES}
            for cells in log.rows():
                record = self._record(cells, where)
                if isinstance(record, str):
                    self.skipped += 1
                    if len(self.problems) < 10:
                        self.problems.append(f"{log.path}:{log.line}: {log.problem or record}")
                elif record is not None:
                    yield record

    def _record(self, cells: list[str], where: dict[str, int | None]) -> UsageRecord | str | None:
        """The row's record, ``None`` if it is out of the time window, or why it is not a usage row."""

        def cell(name: str) -> str:
            index = where[name]
            return cells[index] if index is not None and index < len(cells) else ""

        stamp = utc_timestamp(cell("timestamp"))
        if stamp is None:
            return f"TimestampUTC is {cell('timestamp')!r}, expected an ISO 8601 time with a UTC offset"
        if (self.since is not None and stamp < self.since) or (self.until is not None and stamp > self.until):
            return None
        values: dict[str, Any] = {"timestamp": datetime.fromisoformat(stamp), "model": cell("model")}
        for name in _COUNTS:
            text = cell(name).strip()
            if not text.isdigit():
                return f"{_COLUMN_OF[name]} is {text!r}, expected a non-negative integer"
            values[name] = int(text)
        for name in _INTS:
            text = cell(name).strip()
            values[name] = int(text) if text.isdigit() else None
        for name in _FLOATS:
            values[name] = amount(cell(name))
        for name in _TEXTS:
            values[name] = cell(name) or None
        values["tags"] = _mapping(cell("tags")) or {}
        values["connector_calls"] = connector_calls(cell("connector_calls")) or None
        try:
            return UsageRecord(**values)
        except (TypeError, ValueError) as exc:
            return str(exc)

    def to_pandas(self) -> Any:
        """The rows as a ``pandas.DataFrame``: one column per record field, ``timestamp`` in UTC
        (``datetime64[us, UTC]``), counts ``int64``, the optional units nullable (``Int64``, ``Float64``), texts
        ``string``, ``tags`` and ``connector_calls`` as dicts. Needs pandas
        (``pip install 'tokenlog-usage[pandas]'``)."""
        try:
            import pandas as pd  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install 'tokenlog-usage[pandas]'") from None
        columns = _columns(self)
        frame = pd.DataFrame({name: columns[name] for name in FIELD_NAMES})
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[us, UTC]")
        types: dict[str, str] = {name: "int64" for name in _COUNTS}
        types.update({name: "Int64" for name in _INTS})
        types.update({name: "Float64" for name in _FLOATS})
        types.update({name: "string" for name in ("model", *_TEXTS)})
        return frame.astype(types)

    def to_polars(self) -> Any:
        """The rows as a ``polars.DataFrame``, with the dtypes of :meth:`to_pandas` (``Datetime("us", "UTC")``,
        ``Int64``, ``Float64``, ``String``; nulls where a unit was not given; ``tags`` and ``connector_calls`` as
        JSON text). Needs polars (``pip install 'tokenlog-usage[polars]'``)."""
        try:
            import polars as pl  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise ImportError("to_polars() needs polars: pip install 'tokenlog-usage[polars]'") from None
        columns = _columns(self)
        for name in ("tags", "connector_calls"):
            columns[name] = [None if value is None else json.dumps(value, sort_keys=True) for value in columns[name]]
        schema: dict[str, Any] = {"timestamp": pl.Datetime("us", "UTC"), "model": pl.String}
        schema.update({name: pl.Int64 for name in (*_COUNTS, *_INTS)})
        schema.update({name: pl.Float64 for name in _FLOATS})
        schema.update({name: pl.String for name in (*_TEXTS, "tags", "connector_calls")})
        return pl.DataFrame({name: columns[name] for name in FIELD_NAMES}, schema={n: schema[n] for n in FIELD_NAMES})


def read_log(
    paths: PathLike | Iterable[PathLike], *, since: datetime | str | None = None, until: datetime | str | None = None
) -> LogRecords:
    """The rows of one log or several (CSV, JSONL or SQLite, each told by its content) as
    :class:`~tokenlog.UsageRecord` objects, streamed: iterate it, or call ``.to_pandas()`` / ``.to_polars()``.

    ``since`` and ``until`` (aware datetimes, or ISO 8601 text with an offset) keep the rows in that window, both
    inclusive. A file that is missing or not a usage log raises :class:`~tokenlog.logs.read.LogFileError` at
    once; rows that are not usage rows are skipped and counted (:attr:`LogRecords.skipped`).
    """
    listed = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    return LogRecords(listed, _moment(since, "since"), _moment(until, "until"))


def _moment(value: datetime | str | None, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(f"read_log {name}={value!r} has no time zone: pass an aware datetime")
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    stamp = utc_timestamp(value)
    if stamp is None:
        raise ValueError(f"read_log {name}={value!r}: expected an ISO 8601 time with a UTC offset")
    return stamp


def _columns(records: Iterable[UsageRecord]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {name: [] for name in FIELD_NAMES}
    for record in records:
        for name in FIELD_NAMES:
            value = getattr(record, name)
            columns[name].append(dict(value) if name == "tags" else value)
    return columns


def _mapping(text: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
