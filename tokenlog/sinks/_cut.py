"""How a CSV sink ends a line that a killed writer left cut short, before it appends its own rows.

A line break alone is not always enough: if the line was cut inside a quoted field (a model name with
a comma, the tags), every CSV reader would take the line break and the rows after it as part of that
field. So the cut line gets the closing quote it lacks, then the line break: it stays a line of its
own, which ``tokenlog validate`` reports and ``tokenlog repair`` moves aside, and the rows after it
read as rows.
"""

from __future__ import annotations

import os
import re

__all__ = ["end_cut_line"]

# A line that starts like a tokenlog row (TimestampUTC is first and never quoted): where the cut row began.
_ROW_START = re.compile(rb"\n[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:")
_CHUNK = 65536
_SCAN_LIMIT = 16 * 1024 * 1024  # rows are far shorter; past this, count quotes from where we stopped


def end_cut_line(fd: int, size: int, newline: str) -> bytes:
    """The bytes that end the file's last line, which has no line break (we hold the file's lock).

    RFC 4180 quoting toggles at every ``"`` (a doubled ``""`` toggles twice), so the cut row is
    inside a quoted field exactly when it holds an odd number of quotes.
    """
    row = _cut_row(fd, size)
    ending = newline.encode()
    if row.count(b'"') % 2:
        return b'"' + ending
    if ending == b"\r\n" and row.endswith(b"\r"):
        return b"\n"  # cut between the two bytes of a CRLF: the row itself is whole
    return ending


def _cut_row(fd: int, size: int) -> bytes:
    """The bytes of the cut row: from the start of the last line that begins like a row, to the end."""
    start, data = size, b""
    while start > 0 and size - start < _SCAN_LIMIT:
        step = min(_CHUNK, start)
        start -= step
        data = os.pread(fd, step, start) + data
        starts = [found.start() for found in _ROW_START.finditer(data)]
        if starts:
            return data[starts[-1] + 1 :]
    return data  # the whole file (the header has no quotes), or as far back as we looked
