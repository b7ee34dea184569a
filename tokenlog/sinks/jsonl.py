"""JsonlSink: one JSON object a line, in a file any number of processes can append to."""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable

from .._append import AppendState, LockedAppendFile
from ..record import UsageRecord
from ._fields import fields

__all__ = ["JsonlSink", "format_line"]


def format_line(record: UsageRecord) -> str:
    """One JSON object and a line break: keys in :data:`~tokenlog.sinks._fields.FIELDS` order, ASCII only.

    Every character outside ASCII, every control character (a newline, NUL) and every lone
    surrogate is written as a ``\\uXXXX`` escape, so a line never breaks and any string reads
    back exactly with Python's ``json.loads``.
    """
    return json.dumps(fields(record), ensure_ascii=True, separators=(",", ":")) + "\n"


def _whole_lines(data: bytes, state: AppendState) -> bytes:
    return data if state.ends_with_newline() else b"\n" + data  # a writer died mid-line: start a new one


class JsonlSink:
    """Appends one JSON object per record, a line each, to a file shared by threads and processes.

    Keys: ``timestamp`` (ISO 8601 UTC with microseconds, as in the CSV), ``model``,
    ``prompt_tokens``, ``completion_tokens``, ``total_tokens``, ``session``, ``function``,
    ``latency_ms``, ``request_id`` (``null`` when unknown) and ``tags`` (an object). The file has
    the CSV sink's guarantees: an exclusive lock per append, whole lines only, a new line after
    a line cut short by a killed writer, nothing half-written after a failed write.

    >>> import tempfile, datetime, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "usage.jsonl"
    >>> now = datetime.datetime(2023, 10, 27, 10, 30, tzinfo=datetime.timezone.utc)
    >>> JsonlSink(path).write(UsageRecord(now, "mistral-small", 12, 5, 17, tags={"team": "a"}))
    >>> print(path.read_text(), end="")
    {"timestamp":"2023-10-27T10:30:00.000000+00:00","model":"mistral-small","prompt_tokens":12,...,"tags":{"team":"a"}}
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 5.0) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self._file = LockedAppendFile(self.path, lock_timeout)

    def __repr__(self) -> str:
        return f"JsonlSink({self.path!r})"

    def write(self, record: UsageRecord) -> None:
        """Append one line; raise :class:`~tokenlog.SinkError` if it cannot be stored."""
        self.write_many((record,))

    def write_many(self, records: Iterable[UsageRecord]) -> None:
        """Append lines in order, all in one locked write."""
        data = "".join([format_line(record) for record in records]).encode("ascii")
        if data:
            self._file.append(functools.partial(_whole_lines, data))

    def flush(self) -> None:
        """Nothing is buffered: every line is in the file when :meth:`write` returns."""

    def close(self) -> None:
        """Close the file; a later :meth:`write` opens it again."""
        self._file.close()
