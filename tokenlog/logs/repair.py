"""``tokenlog repair``: move the broken lines of a CSV log to a side file, keeping every byte.

A broken line is one that ``tokenlog validate`` reports an error for: a line cut short by a killed
writer, a wrong number of fields, counts that are not counts, a NUL byte, a header repeated by
``cat``, a blank line. A whole row whose timestamp is in another valid ISO 8601 form (``Z``,
``+02:00``) is not broken: it stays, and ``normalize=True`` (``tokenlog repair --normalize``)
rewrites its timestamp as ``2023-10-27T10:30:00.123456+00:00``. The header and every other row stay
where they were, in order, byte for byte; each broken line goes, verbatim, to ``<stem>.broken<ext>``
beside the log (``usage.csv`` -> ``usage.broken.csv``), after a line that says where it was and why.

It is safe while programs are writing to the log: the repair holds the same lock as the sinks
(``flock`` on the file) from the first byte it reads until the repaired file has replaced the old
one. A writer waits for it (up to its ``lock_timeout``; past that it keeps its rows and retries),
then finds the old file replaced and appends to the new one. Nothing is lost if the repair is
interrupted: the broken lines are written (and synced) to the side file first, then the repaired
file is written beside the log and renamed over it in one step. At worst a broken line is in both.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from codecs import BOM_UTF8 as _BOM
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import BinaryIO

from .._append import AppendState, LockedAppendFile
from ..errors import SinkError, counted
from ..format import MANDATORY_COLUMNS, utc_timestamp
from .validate import LogCheck, LogRecord, Problem

__all__ = ["RepairError", "RepairResult", "broken_path", "repair_log"]


class RepairError(Exception):
    """The file cannot be repaired (it is not a tokenlog CSV log, or its lock could not be had); it is unchanged."""


@dataclass
class Moved:
    """One broken record moved aside: its first and last line in the log, and why it is broken."""

    first: int
    last: int
    why: str

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass
class RepairResult:
    """What :func:`repair_log` did. The file is untouched when ``moved`` and ``normalized`` are empty."""

    path: str
    side: str
    rows: int = 0
    moved: list[Moved] = field(default_factory=list)
    normalized: list[int] = field(default_factory=list)
    """The lines whose timestamp was rewritten in UTC (``normalize=True``)."""
    other_forms: list[int] = field(default_factory=list)
    """The lines left with a timestamp in another ISO 8601 form (``normalize=False``)."""
    header_problems: list[Problem] = field(default_factory=list)

    def timestamp_notes(self) -> list[str]:
        """What became of the timestamps in another ISO 8601 form, for ``tokenlog repair`` to print."""
        notes = []
        if self.normalized:
            notes.append(
                f"NORMALIZED: {counted(len(self.normalized), 'timestamp')} of {self.path} in UTC "
                f"(lines {_line_list(self.normalized)})"
            )
        if self.other_forms:
            notes.append(
                f"note: {counted(len(self.other_forms), 'whole row')} of {self.path} "
                f"{'has' if len(self.other_forms) == 1 else 'have'} a timestamp in another ISO 8601 "
                f"form (lines {_line_list(self.other_forms)}); they stay. `tokenlog repair --normalize` rewrites "
                "them in UTC (+00:00), as the mandatory format wants"
            )
        return notes


def broken_path(path: str) -> str:
    """Where the broken lines of ``path`` go: ``usage.csv`` -> ``usage.broken.csv``."""
    root, ext = os.path.splitext(path)
    return f"{root}.broken{ext or '.csv'}"


def repair_log(path: str | os.PathLike[str], *, lock_timeout: float = 10.0, normalize: bool = False) -> RepairResult:
    """Move every broken line of the CSV log at ``path`` to its side file; keep the rest in place.

    With ``normalize``, a timestamp in another ISO 8601 form (``Z``, ``+02:00``) is rewritten in UTC as
    the CSV sink writes it; without, such rows stay as they are (``other_forms`` lists them).

    A symbolic link is followed: the file it points to is repaired, and stays where it is. Raises
    :class:`RepairError` if the file is not a tokenlog CSV log, has other hard links (writers of
    the other names would go on writing to the old file), or its lock is held longer than
    ``lock_timeout`` seconds.
    """
    real = os.path.realpath(os.fspath(path))
    if not os.path.isfile(real):
        raise RepairError(f"{os.fspath(path)}: no such file")
    result = RepairResult(real, broken_path(real))
    appender = LockedAppendFile(real, lock_timeout)
    try:
        appender.append(lambda state: _repair_locked(state, result, normalize))
    except SinkError as exc:
        raise RepairError(f"{exc}; nothing changed") from None
    finally:
        appender.close()
    return result


def _repair_locked(state: AppendState, result: RepairResult, normalize: bool) -> None:
    """The repair itself, while this process holds the file's lock."""
    if os.fstat(state.fd).st_nlink > 1:
        raise RepairError(
            f"{result.path} has other hard links; a repair would leave their writers on the old file. Nothing changed"
        )
    check = LogCheck(result.path)
    with os.fdopen(os.dup(state.fd), "rb") as handle:
        handle.seek(0)
        records = check.records(handle)
        header = next(records, None)
        if header is None or not header.raw:
            return  # an empty file: nothing to repair
        _check_header(header, result.path)
        result.header_problems = [problem for problem in header.problems if not problem.warning]
        directory = os.path.dirname(result.path)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(result.path)}.", dir=directory)
        try:
            with open(descriptor, "wb") as kept, tempfile.TemporaryFile() as broken:
                kept.writelines(header.raw)
                for record in records:
                    if record.broken:
                        _move(record, result, broken)
                        continue
                    if record.other_form:
                        if normalize:
                            record = _normalized(record)
                            result.normalized.append(record.line)
                        else:
                            result.other_forms.append(record.line)
                    kept.writelines(record.raw)
                    result.rows += 1
                if not result.moved and not result.normalized:
                    return
                if result.moved:
                    broken.seek(0)
                    _append_synced(result.side, broken)
                kept.flush()
                os.fsync(kept.fileno())
            if _replace(temporary, result.path, os.fstat(state.fd)):
                # Empty the old file, now unlinked: a writer still holding it sees it shrink, follows the path,
                # and does not append its recent rows again (they are in the copy). Only once the rename is
                # on disk: a crash must not bring back an emptied log.
                os.ftruncate(state.fd, 0)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)


def _check_header(header: LogRecord, path: str) -> None:
    first = header.raw[0].removeprefix(_BOM).rstrip(b"\r\n")
    if first.split(b",")[: len(MANDATORY_COLUMNS)] != [name.encode() for name in MANDATORY_COLUMNS]:
        shown = first[:120].decode("utf-8", "replace")
        raise RepairError(
            f"{path} is not a tokenlog CSV log: its first line is {shown!r}, expected the header "
            f"{','.join(MANDATORY_COLUMNS)}. Nothing changed"
        )


def _normalized(record: LogRecord) -> LogRecord:
    """``record`` with its timestamp (the first field, never holding a comma) rewritten in UTC."""
    first, comma, rest = record.raw[0].partition(b",")
    stamp = utc_timestamp(first.strip(b'"').decode())
    if stamp is None:  # never for a record of another form
        return record
    return record._replace(raw=[stamp.encode() + comma + rest, *record.raw[1:]], problems=[])


def _move(record: LogRecord, result: RepairResult, broken: BinaryIO) -> None:
    """Write ``record`` verbatim to ``broken``, after a line that says where it was and why."""
    errors = [problem.message for problem in record.problems if not problem.warning]
    moved = Moved(record.line, record.line + max(len(record.raw), 1) - 1, "; ".join(errors))
    result.moved.append(moved)
    data = b"".join(record.raw)
    added = "" if data.endswith(b"\n") else " (it had no line break at its end: one is added here)"
    lines = f"lines {moved}" if moved.first != moved.last else f"line {moved}"
    note = f"# tokenlog repair, {_now()}: {result.path} {lines}{added}: {moved.why}"
    broken.write(_one_line(note).encode("utf-8", "backslashreplace") + b"\n")
    broken.write(data if not added else data + b"\n")


def _append_synced(path: str, source: BinaryIO) -> None:
    """Append the whole of ``source`` to ``path`` and sync it to disk."""
    with open(path, "ab") as side:
        shutil.copyfileobj(source, side, 1 << 20)
        side.flush()
        os.fsync(side.fileno())


def _replace(temporary: str, path: str, old: os.stat_result) -> bool:
    """Rename ``temporary`` over ``path``, with the old file's permissions (and owner, if we may).

    True if the rename is known to be on disk (its directory was synced).
    """
    os.chmod(temporary, old.st_mode & 0o7777)
    with contextlib.suppress(OSError):
        os.chown(temporary, old.st_uid, old.st_gid)
    os.replace(temporary, path)
    try:  # make the rename itself durable
        directory = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        return False
    return True


def _line_list(lines: list[int], shown: int = 10) -> str:
    more = f", ... ({len(lines) - shown:,} more)" if len(lines) > shown else ""
    return ", ".join(map(str, lines[:shown])) + more


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
