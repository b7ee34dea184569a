"""``tokenlog validate``: check a usage log against the hackathon's mandatory CSV format.

The check is strict on purpose: it must never pass a file that a strict reader would reject. A
valid file is UTF-8 without a byte order mark; its first line is the header, whose first five
columns are ``TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens`` (more columns may
follow); every other line is one row with as many fields as the header, a UTC timestamp written
``YYYY-MM-DDTHH:MM:SS[.fff|.ffffff]+00:00``, a model name, and three non-negative integers with
``TotalTokens = PromptTokens + CompletionTokens``. Every line ends with a line break, all the same
one (``\\n`` or ``\\r\\n``); there are no blank lines, no NUL bytes, and the header appears once.

The file is read line by line (constant memory), and every problem is given with its physical line
number: a quoted field that holds a line break makes its row span several lines, and the row's
problems are given at its first line.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "usage.csv"
>>> _ = path.write_text("TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\\n"
...                     "2026-06-01T10:00:00.000000+00:00,mistral-small,12,5,18\\n")
>>> check = LogCheck(path)
>>> for problem in check.problems():
...     print(problem)
/.../usage.csv:2: TotalTokens is 18, expected 17 (PromptTokens 12 + CompletionTokens 5)
>>> check.rows, check.errors
(1, 1)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from codecs import BOM_UTF8 as _BOM
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO, NamedTuple

from ..format import MANDATORY_COLUMNS, utc_timestamp

__all__ = [
    "LogCheck",
    "LogRecord",
    "Problem",
    "RecordCheck",
    "check_for",
    "other_time_form",
    "row_problems",
    "tags_problem",
    "timestamp_problem",
]

_EXPECTED_TIME = "a UTC time like 2023-10-27T10:30:00.123456+00:00"
_STRICT_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3}|\.[0-9]{6})?\+00:00")
_COUNT = re.compile(r"[0-9]+")
_HEADER = ",".join(MANDATORY_COLUMNS)
# A line that starts like a row: a timestamp, then a comma (TimestampUTC is first and never quoted).
_ROW_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}[^,\"]*,")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file: where (``path:line``), what, and what was expected."""

    path: str
    line: int
    message: str
    warning: bool = False
    form: bool = False
    """An error of form only: a timestamp in another valid ISO 8601 form (``Z``, ``+02:00``), which
    ``tokenlog repair --normalize`` rewrites; the row itself is whole."""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {'warning: ' if self.warning else ''}{self.message}"


def timestamp_problem(value: str) -> str | None:
    """What is wrong with a ``TimestampUTC`` value, or ``None`` if a strict reader accepts it.

    >>> timestamp_problem("2023-10-27T10:30:00.123456+00:00") is None
    True
    >>> print(timestamp_problem("2023-10-27T12:30:00+02:00"))
    TimestampUTC '2023-10-27T12:30:00+02:00' is not UTC, expected 2023-10-27T10:30:00.000000+00:00
    """
    if _STRICT_TIME.fullmatch(value):
        try:
            datetime.fromisoformat(value)
            return None
        except ValueError as exc:
            return f"TimestampUTC {value!r} is not a real time ({exc}), expected {_EXPECTED_TIME}"
    if not value:
        return f"TimestampUTC is empty, expected {_EXPECTED_TIME}"
    if value != value.strip():
        return f"TimestampUTC {value!r} has spaces around it, expected {_EXPECTED_TIME}"
    if value[-1:] in ("Z", "z") and utc_timestamp(value) is not None:
        return (
            f"TimestampUTC {value!r} ends with 'Z', expected '+00:00' (strict readers such as Python 3.10's "
            "datetime.fromisoformat reject 'Z')"
        )
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return f"TimestampUTC {value!r} is not an ISO 8601 timestamp, expected {_EXPECTED_TIME}"
    offset = moment.utcoffset()
    if offset is None:
        return (
            f"TimestampUTC {value!r} has no UTC offset, expected +00:00 at its end "
            "(without one it could be any time zone)"
        )
    if offset:
        return f"TimestampUTC {value!r} is not UTC, expected {utc_timestamp(value)}"
    return f"TimestampUTC {value!r} is not written YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00, expected {_EXPECTED_TIME}"


_NORMALIZE_HINT = " (`tokenlog repair --normalize` rewrites it)"


def other_time_form(value: str) -> bool:
    """Whether ``value`` is a valid ISO 8601 time with an offset, but not written as the mandatory format writes it.

    >>> other_time_form("2023-10-27T10:30:00Z"), other_time_form("2023-10-27T10:30:00.000000+00:00")
    (True, False)
    """
    return value == value.strip() and timestamp_problem(value) is not None and utc_timestamp(value) is not None


def row_problems(cells: Sequence[str]) -> list[str]:
    """What is wrong with the five mandatory cells of a row (empty list: nothing).

    >>> row_problems(["2023-10-27T10:30:00+00:00", "mistral-small", "12", "-5", "7"])
    ["CompletionTokens is '-5', expected a non-negative integer"]
    """
    stamp, model, *counts = cells[:5]
    problems = []
    problem = timestamp_problem(stamp)
    if problem:
        problems.append(problem)
    if not model.strip():
        problems.append(f"Model is {model!r}, expected the model's name")
    elif model != model.strip() or not model.isprintable():
        problems.append(f"Model {model!r} has spaces around it or control characters in it, expected the name alone")
    numbers = []
    for name, value in zip(MANDATORY_COLUMNS[2:], counts, strict=True):
        if _COUNT.fullmatch(value):
            numbers.append(int(value))
        else:
            problems.append(f"{name} is {value!r}, expected a non-negative integer")
    if len(numbers) == 3 and numbers[2] != numbers[0] + numbers[1]:
        prompt, completion, total = numbers
        problems.append(
            f"TotalTokens is {total}, expected {prompt + completion} "
            f"(PromptTokens {prompt} + CompletionTokens {completion})"
        )
    return problems


def tags_problem(value: str) -> str | None:
    """What is wrong with a ``Tags`` value, or ``None``: empty, or a JSON object as the CSV sink writes it.

    A row cut short inside its tags (its writer was killed) fails here, since no prefix of a JSON
    object is one.

    >>> print(tags_problem('{"team":"a"}'), tags_problem(""))
    None None
    >>> print(tags_problem('{"team":"a'))
    Tags is '{"team":"a', expected empty or a JSON object such as {"team":"a"} (cut short?)
    """
    if not value:
        return None
    try:
        tags = json.loads(value)
    except ValueError:
        tags = None
    if isinstance(tags, dict):
        return None
    shown = value if len(value) <= 60 else value[:57] + "..."
    return f'Tags is {shown!r}, expected empty or a JSON object such as {{"team":"a"}} (cut short?)'


class LogRecord(NamedTuple):
    """One record of a file as :meth:`LogCheck.records` read it: where it starts, its physical lines
    exactly as read (line breaks included), and its problems. A header, a row, or a broken line."""

    line: int
    raw: list[bytes]
    problems: list[Problem]

    @property
    def broken(self) -> bool:
        """True if any of its problems is an error of more than form (warnings and a timestamp in another
        ISO 8601 form do not break a record)."""
        return any(not problem.warning and not problem.form for problem in self.problems)

    @property
    def other_form(self) -> bool:
        """True if it is a whole row whose timestamp is in another ISO 8601 form (``Z``, another offset)."""
        return not self.broken and any(problem.form for problem in self.problems)


class LogCheck:
    """Checks one file. Iterate :meth:`problems` (or :meth:`records`); then :attr:`rows`, :attr:`errors` and
    :attr:`warnings` count what it saw."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.rows = 0
        self.errors = 0
        self.warnings = 0
        self._columns: list[str] | None = None
        self._ending: bytes | None = None  # the first line's line break
        self._tags: int | None = None  # where the header has a Tags column

    def problems(self) -> Iterator[Problem]:
        """Every problem in the file, in the order of its lines."""
        for record in self.records():
            if record.problems:
                yield from record.problems

    def records(self, handle: BinaryIO | None = None) -> Iterator[LogRecord]:
        """Every record of the file in order, each with its bytes and problems (from ``handle`` if given).

        A record is one physical line, or several when a quoted field holds a line break. A quoted
        field still open when a line that starts like a row begins (a timestamp, then a comma) was
        cut short: that record ends there, and the new line starts the next one.
        """
        with contextlib.ExitStack() as stack:
            if handle is None:
                handle = stack.enter_context(open(self.path, "rb"))
            raw_lines: list[bytes] = []  # the lines of a record whose quoted field is still open
            texts: list[str] = []  # and their text
            problems: list[Problem] = []
            start = number = 0
            for number, raw in enumerate(handle, 1):
                if not raw_lines:  # the common case: a new record
                    start, raw_lines, problems = number, [raw], []
                    text = self._line(number, raw, problems)
                else:
                    found: list[Problem] = []
                    text = self._line(number, raw, found)
                    if texts and text is not None and _ROW_START.match(text):
                        problems.append(self._cut_inside_quotes(start, number))
                        yield LogRecord(start, raw_lines, problems)
                        start, raw_lines, problems, texts = number, [], [], []
                    raw_lines.append(raw)
                    problems += found
                if text is None:  # unreadable: checked no further
                    if not texts:
                        yield LogRecord(start, raw_lines, problems)
                        raw_lines = []
                    continue
                if texts:
                    texts.append(text)
                    text = "\n".join(texts)
                fields = _split(text)
                if fields is None:  # a quoted field goes on on the next line
                    if not texts:
                        texts = [text]
                    continue
                problems += self._record(start, fields, text)
                yield LogRecord(start, raw_lines, problems)
                raw_lines, texts = [], []
            if raw_lines:
                problems.append(
                    self._error(start, "a quoted field opened on this line is never closed, expected a closing '\"'")
                )
                yield LogRecord(start, raw_lines, problems)
            if number == 0:
                yield LogRecord(1, [], [self._error(1, f"the file is empty, expected the header line {_HEADER}")])

    def _cut_inside_quotes(self, start: int, number: int) -> Problem:
        self.rows += self._columns is not None
        return self._error(
            start,
            f"is cut short inside a quoted field (was its writer killed?): line {number} starts a new row, "
            "expected the field closed and the row complete",
        )

    def _line(self, number: int, raw: bytes, problems: list[Problem]) -> str | None:
        """Check one physical line's bytes; return its text (without the line break), or None if unreadable."""
        if number == 1 and raw.startswith(_BOM):
            problems.append(
                self._error(
                    1,
                    "the file starts with a UTF-8 byte order mark, expected none (csv readers would name the first "
                    "column '\\ufeffTimestampUTC')",
                )
            )
            raw = raw[len(_BOM) :]
        ending = b"\r\n" if raw.endswith(b"\r\n") else b"\n" if raw.endswith(b"\n") else b""
        body = raw[: len(raw) - len(ending)]
        if not ending:
            problems.append(
                self._error(
                    number, "the last line has no line break: it may be cut short, expected every line to end with one"
                )
            )
        elif self._ending is None:
            self._ending = ending
        elif ending != self._ending:
            problems.append(
                self._error(
                    number,
                    f"ends with {_name(ending)} but line 1 ends with {_name(self._ending)}, expected one kind of "
                    "line break in the whole file",
                )
            )
        if b"\0" in body:
            problems.append(self._error(number, f"holds a NUL byte at column {body.index(0) + 1}, expected text"))
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(
                self._error(
                    number,
                    f"is not valid UTF-8 (byte 0x{body[exc.start]:02x} at column {exc.start + 1}), expected UTF-8",
                )
            )
            return None
        if "\r" in text:
            problems.append(
                self._error(number, f"holds a carriage return at column {text.index(chr(13)) + 1}, expected none")
            )
        return text

    def _record(self, line: int, fields: _Fields, text: str) -> Iterator[Problem]:
        values, quoted = fields
        if not text:
            yield self._error(line, "is blank, expected " + ("a row" if self._columns else f"the header {_HEADER}"))
            return
        if isinstance(quoted, _Malformed):
            yield self._error(line, quoted.message)
            if self._columns is None:
                self._columns = values
            else:
                self.rows += 1
            return
        if self._columns is None:
            if (yield from self._header(line, values, quoted)):
                return
            self._columns = list(MANDATORY_COLUMNS)  # no header: check this line as a row of the five columns
        if values == self._columns:
            yield self._error(line, "repeats the header, expected it once, on line 1 (were two logs joined?)")
            return
        self.rows += 1
        if len(values) != len(self._columns):
            cut = (
                " (cut short? a writer killed mid-row leaves a line like this)"
                if len(values) < len(self._columns)
                else ""
            )
            yield self._error(line, f"has {len(values)} fields, expected {len(self._columns)} as in the header{cut}")
        elif len(values) < len(MANDATORY_COLUMNS):  # and so has the header, which was reported already
            yield self._error(line, f"has {len(values)} fields, expected at least {len(MANDATORY_COLUMNS)}")
        if len(values) < len(MANDATORY_COLUMNS):
            return
        form = _NORMALIZE_HINT if other_time_form(values[0]) else ""
        for message in row_problems(values):
            if form and message.startswith("TimestampUTC "):  # timestamp_problem's, given first
                yield self._error(line, message + form, form=True)
                form = ""
            else:
                yield self._error(line, message)
        if self._tags is not None and self._tags < len(values):
            wrong = tags_problem(values[self._tags])
            if wrong:
                yield self._error(line, wrong)
        yield from self._quoting(line, quoted, text)

    def _header(self, line: int, values: list[str], quoted: list[bool]) -> Generator[Problem, None, bool]:
        """Check the first line as the header; return False if it is a row instead (no header at all)."""
        if values[: len(MANDATORY_COLUMNS)] != list(MANDATORY_COLUMNS):
            if utc_timestamp(values[0]) is not None:
                yield self._error(line, f"is a row, expected the header {_HEADER} first")
                return False
            yield self._error(line, f"the header is {','.join(values)[:200]!r}, expected it to start with {_HEADER}")
        self._columns = values
        self._tags = values.index("Tags") if "Tags" in values else None
        for index, name in enumerate(values):
            if not name.strip():
                yield self._error(line, f"column {index + 1} of the header has no name, expected a column name")
            elif values.index(name) != index:
                yield self._error(line, f"column {name!r} appears twice in the header, expected it once")
        yield from self._quoting(line, quoted, "")
        return True

    def _quoting(self, line: int, quoted: list[bool], text: str) -> Iterator[Problem]:
        """Warnings: valid CSV that line-oriented readers would still get wrong."""
        for name, was_quoted in zip(MANDATORY_COLUMNS, quoted, strict=False):
            if was_quoted:
                yield self._warning(line, f"{name} is quoted; csv readers accept it, a split(',') reader would not")
        if "\n" in text:
            yield self._warning(line, f"this row spans {text.count(chr(10)) + 1} lines (a quoted line break)")

    def _error(self, line: int, message: str, *, form: bool = False) -> Problem:
        self.errors += 1
        return Problem(self.path, line, message, form=form)

    def _warning(self, line: int, message: str) -> Problem:
        self.warnings += 1
        return Problem(self.path, line, message, warning=True)


class RecordCheck:
    """The checks of each row, for a JSONL or SQLite log: a writer cannot cut one of its rows in two, so only the
    values are checked (as :func:`row_problems` and :func:`tags_problem` check a CSV row's). The same interface as
    :class:`LogCheck`; a problem's line is the JSONL line, or the SQLite rowid."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.rows = self.errors = self.warnings = 0

    def problems(self) -> Iterator[Problem]:
        """Every problem, in the order of the rows."""
        from .read import open_log

        log = open_log(self.path, errors="replace")
        for cells in log.rows():
            self.rows += 1
            found = [log.problem] if log.problem else [*row_problems(cells), tags_problem(cells[9])]
            for message in filter(None, found):
                self.errors += 1
                yield Problem(self.path, log.line, message)


def check_for(path: str | os.PathLike[str], fmt: str) -> LogCheck | RecordCheck:
    """The check of a log in format ``fmt`` (``"csv"``, ``"jsonl"`` or ``"sqlite"``, as
    :func:`~tokenlog.logs.read.log_format` says): the whole file's form for CSV, each row's values for the others."""
    return LogCheck(path) if fmt == "csv" else RecordCheck(path)


@dataclass(frozen=True)
class _Malformed:
    """Why a line's quoting is wrong; stands in for the list of which fields were quoted."""

    message: str


_Fields = tuple[list[str], "list[bool] | _Malformed"]


def _split(text: str) -> _Fields | None:
    """RFC 4180 fields of a row, and which were quoted; ``None`` if a quoted field is still open."""
    if '"' not in text:
        plain = text.split(",")
        return plain, [False] * len(plain)
    values: list[str] = []
    quoted: list[bool] = []
    position, end = 0, len(text)
    while True:
        if text.startswith('"', position):
            scan = position + 1
            while True:
                close = text.find('"', scan)
                if close < 0:
                    return None
                if text.startswith('"', close + 1):
                    scan = close + 2
                    continue
                break
            values.append(text[position + 1 : close].replace('""', '"'))
            quoted.append(True)
            position = close + 1
            if position < end and text[position] != ",":
                return values, _Malformed(f"has text after a closing quote at column {position + 1}, expected a comma")
        else:
            comma = text.find(",", position)
            stop = end if comma < 0 else comma
            value = text[position:stop]
            if '"' in value:
                return values, _Malformed(
                    f"has a '\"' inside an unquoted field at column {position + value.index(chr(34)) + 1}, expected "
                    "the field quoted and the quote doubled"
                )
            values.append(value)
            quoted.append(False)
            position = stop
        if position >= end:
            return values, quoted
        position += 1  # the comma
        if position == end:
            values.append("")
            quoted.append(False)
            return values, quoted


def _name(ending: bytes) -> str:
    return "CRLF" if ending == b"\r\n" else "LF"
