"""``tokenlog merge``: many usage logs into one valid CSV file, sorted by time, each call once.

The inputs may be CSV, JSONL or SQLite logs (see :mod:`tokenlog.logs.read`). The output is a CSV log
that ``tokenlog validate`` passes: the five mandatory columns first, then every optional column
(``Session``, ``Function``, ...) that any input has, in the CSV sink's order, then any other named
columns in the order they were first seen; a row from an input without a column has it empty.
Timestamps are written in UTC as ``2023-10-27T10:30:00.123456+00:00`` (an input's ``Z`` or other
offset is converted), counts as plain integers.

No call is dropped. Within one input every line is a call: two processes can write identical rows in
the same microsecond. Across inputs, rows of one timestamp with a ``RequestId`` are duplicates when the
id repeats; rows without one merge as a multiset union: each distinct row as many times as the input
that holds it most often. So a copied log, or one input given twice, adds nothing.

Memory stays bounded: rows are sorted in runs of :data:`RUN_ROWS`; when there is more than one run,
each is spilled to a temporary file and the runs are merged from disk. The output is written to a
temporary file beside it and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import csv
import heapq
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

from ..format import ALL_COLUMNS, utc_timestamp
from .read import UsageLog, open_log
from .validate import row_problems, tags_problem, timestamp_problem

__all__ = ["RUN_ROWS", "MergeResult", "merge_logs", "output_columns"]

RUN_ROWS = 200_000
"""Rows sorted in memory at a time; more than this are sorted in runs spilled to temporary files."""

_by_time = itemgetter(0)


@dataclass
class MergeResult:
    """What a merge read and wrote. When ``problems`` is not empty and invalid rows were not to be
    skipped, nothing was written."""

    output: str
    columns: tuple[str, ...]
    rows_read: int = 0
    rows_written: int = 0
    duplicates: int = 0
    invalid_rows: int = 0
    problems: list[str] = field(default_factory=list)
    written: bool = False


def output_columns(logs: Sequence[UsageLog]) -> tuple[str, ...]:
    """The merged file's columns: the mandatory five, the sink's optional ones the inputs have, then the others
    that have a name."""
    present = {column for log in logs for column in log.columns}
    known = [column for column in ALL_COLUMNS if column in present]
    others = [column for log in logs for column in log.columns if column not in ALL_COLUMNS and _named(column)]
    return tuple(known + list(dict.fromkeys(others)))


def _named(column: str) -> bool:
    """Whether a column of an input can be a column of the output (unnamed or unprintable ones are left out)."""
    return bool(column) and column == column.strip() and column.isprintable()


def merge_logs(
    inputs: Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    skip_invalid: bool = False,
    run_rows: int = RUN_ROWS,
) -> MergeResult:
    """Merge ``inputs`` into the CSV file ``output`` (replacing it); see the module's documentation.

    A row that would make the output invalid (a count that is not a non-negative integer, a total
    that is not prompt + completion, a timestamp without an offset, a cut-off last line) is a
    problem: unless ``skip_invalid``, nothing is written and the problems are returned. An input
    that cannot be read at all raises :class:`~tokenlog.logs.read.LogFileError`.
    """
    logs = [open_log(path, errors="surrogateescape") for path in inputs]  # bad bytes: a problem at their line
    columns = output_columns(logs)
    result = MergeResult(os.fspath(output), columns)
    with tempfile.TemporaryDirectory(prefix="tokenlog-merge-") as spill:
        runs = _sorted_runs(logs, columns, result, Path(spill), run_rows)
        if result.problems and not skip_invalid:
            return result
        ids = columns.index("RequestId") if "RequestId" in columns else None
        rows = _unique(heapq.merge(*runs, key=_by_time), ids, result)
        _write_atomically(Path(result.output), columns, rows)
    result.written = True
    return result


def _sorted_runs(
    logs: Sequence[UsageLog], columns: tuple[str, ...], result: MergeResult, spill: Path, run_rows: int
) -> list[Iterable[tuple[str, ...]]]:
    """Read every input once; return the rows as sorted runs (the last one in memory, the rest on disk)."""
    runs: list[Iterable[tuple[str, ...]]] = []
    batch: list[tuple[str, ...]] = []
    for number, log in enumerate(logs):
        source = (str(number),)  # the row's input, last: duplicates are told apart by it (see _unique)
        for row in _rows(log, columns, result):
            batch.append(row + source)
            if len(batch) >= run_rows:
                batch.sort(key=_by_time)
                runs.append(_spill(batch, spill / f"run-{len(runs)}.csv"))
                batch = []
    batch.sort(key=_by_time)
    runs.append(batch)
    return runs


def _rows(log: UsageLog, columns: tuple[str, ...], result: MergeResult) -> Iterator[tuple[str, ...]]:
    """An input's valid rows in the output's columns; its invalid rows go to ``result.problems``."""
    where = [log.index(column) for column in columns]
    where.append(log.index("Tags") if "Tags" in columns else None)  # checked, as validate checks it
    width = len(log.columns)
    held: _Held | None = None  # the last row is checked once we know it is the last
    for cells in log.rows():
        if held is not None:
            yield from _row(log, held, where, width, result)
        held = _Held(log.line, cells, log.problem)
    if held is not None:
        if log.format == "csv" and not _ends_with_newline(log.path):
            result.rows_read += 1
            result.invalid_rows += 1
            result.problems.append(
                f"{log.path}:{held.line}: the last line has no line break: it may be cut short (add one if it is whole)"
            )
        else:
            yield from _row(log, held, where, width, result)


@dataclass(frozen=True)
class _Held:
    line: int
    cells: list[str]
    problem: str | None


def _row(
    log: UsageLog, held: _Held, where: list[int | None], width: int, result: MergeResult
) -> Iterator[tuple[str, ...]]:
    """The row in the output's columns, normalised; or nothing, and its problems noted."""
    if tuple(held.cells) == log.columns:
        return  # the header again (logs joined with cat): not a row
    result.rows_read += 1
    row, problems = _normalise(held, where, width)
    if problems:
        result.invalid_rows += 1
        result.problems.extend(f"{log.path}:{held.line}: {problem}" for problem in problems)
        return
    yield tuple(row)


def _normalise(held: _Held, where: list[int | None], width: int) -> tuple[list[str], list[str]]:
    """The cells in the output's columns, timestamp in UTC and counts as plain integers; and any problems."""
    if len(held.cells) != width:
        return [], [held.problem or _count_problem(held.cells, width)]
    *row, tags = [held.cells[index] if index is not None else "" for index in where]
    problem = _text_problem(row) or tags_problem(tags)
    if problem:
        return row, [problem]
    stamp = utc_timestamp(row[0])
    if stamp is None:
        return row, [timestamp_problem(row[0]) or f"TimestampUTC {row[0]!r} is not a UTC time"]
    row[0] = stamp  # another offset or "Z" becomes +00:00
    problems = row_problems(row[:5])
    if not problems:
        row[2:5] = [str(int(value)) for value in row[2:5]]
    return row, problems


def _text_problem(row: list[str]) -> str | None:
    """What the mandatory format forbids anywhere in a line: bytes that are not UTF-8, NUL, carriage return."""
    text = "\x1f".join(row)
    if "\0" in text or "\r" in text:
        return "holds a NUL byte or a carriage return, expected neither"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return None


def _count_problem(cells: list[str], width: int) -> str:
    return f"has {len(cells)} fields, expected {width} as in the header" if cells else "is blank, expected a row"


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        if handle.tell() == 0:
            return True
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _spill(rows: list[tuple[str, ...]], path: Path) -> Iterator[tuple[str, ...]]:
    """Write a sorted run to ``path``; return an iterator that reads it back."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)

    def read_back() -> Iterator[tuple[str, ...]]:
        with open(path, encoding="utf-8", newline="") as handle:
            for row in csv.reader(handle):
                yield tuple(row)

    return read_back()


def _unique(rows: Iterable[tuple[str, ...]], ids: int | None, result: MergeResult) -> Iterator[tuple[str, ...]]:
    """Rows in time order, each call once; each row ends with its input's number, which is dropped here.

    A row and its duplicates share a timestamp, so they are in one group of adjacent rows: only that group
    is held in memory.
    """
    group: list[tuple[str, ...]] = []
    for row in rows:
        if group and row[0] != group[0][0]:
            yield from _calls(group, ids, result)
            group = []
        group.append(row)
    yield from _calls(group, ids, result)


def _calls(group: list[tuple[str, ...]], ids: int | None, result: MergeResult) -> Iterator[tuple[str, ...]]:
    """The calls among rows of one timestamp: each key (its request id, else the whole row) as many times as the
    input that holds it most often, in the order first seen."""
    counts: Counter[tuple[object, str]] = Counter()  # (key, input): rows
    for row in group:
        counts[_key(row, ids), row[-1]] += 1
    wanted: Counter[object] = Counter()
    for (key, _source), count in counts.items():
        wanted[key] = max(wanted[key], count)
    for row in group:
        key = _key(row, ids)
        if wanted[key] > 0:
            wanted[key] -= 1
            result.rows_written += 1
            yield row[:-1]
        else:
            result.duplicates += 1


def _key(row: tuple[str, ...], ids: int | None) -> object:
    """What makes two rows one call: the request id if the row has one, else every cell (the input's aside)."""
    if ids is not None and row[ids]:
        return ("id", row[ids])
    return row[:-1]


def _write_atomically(path: Path, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Write the CSV to a temporary file beside ``path``, then rename it over ``path``."""
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(descriptor, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows(rows)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
