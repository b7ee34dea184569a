"""The on-disk format contract: what the sinks write and the log tools read, defined once.

Column names, the record keys of the formats that name their fields, the file suffix of each
format, the default file name, and the timestamp text (``2023-10-27T10:30:00.123456+00:00``):
the sinks (:mod:`tokenlog.sinks`) and the readers (:mod:`tokenlog.logs`) both import them from
here, so a change to the format is a change to this one module.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from .record import FIELD_NAMES

__all__ = [
    "ALL_COLUMNS",
    "DEFAULT_FILE",
    "EXTRA_COLUMNS",
    "MANDATORY_COLUMNS",
    "RECORD_KEYS",
    "SUFFIXES",
    "file_format",
    "iso_timestamp",
    "second_of",
    "utc_timestamp",
]

MANDATORY_COLUMNS = ("TimestampUTC", "Model", "PromptTokens", "CompletionTokens", "TotalTokens")
"""The hackathon's mandatory columns: always first, always in this order."""

EXTRA_COLUMNS = (
    "Session",
    "Function",
    "LatencyMs",
    "RequestId",
    "Tags",
    "CachedTokens",
    "ReasoningTokens",
    "AudioSeconds",
    "ConnectorTokens",
    "ConnectorCalls",
    "Pages",
    "ServiceTier",
    "CostUSD",
)
"""Optional columns a ``CsvSink`` adds after the mandatory ones when asked to."""

ALL_COLUMNS = MANDATORY_COLUMNS + EXTRA_COLUMNS
"""Every CSV column tokenlog knows, in the order of :data:`RECORD_KEYS`."""

RECORD_KEYS = FIELD_NAMES
"""The JSONL keys and SQLite columns: a record's fields, in the order of the CSV columns they become."""

DEFAULT_FILE = "mistral_usage_log.csv"
"""The log tokenlog writes when nobody said where (``$TOKENLOG_FILE`` overrides it)."""

SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".db": "sqlite",
    ".sqlite": "sqlite",
    ".sqlite3": "sqlite",
}
"""A log file's suffix (lower case) and the format it holds: ``csv``, ``jsonl`` or ``sqlite``."""

KNOWN_SUFFIXES = ".csv (CSV), .jsonl or .ndjson (JSON Lines), .db, .sqlite or .sqlite3 (SQLite)"
""":data:`SUFFIXES` as a message says them."""


def file_format(path: str, what: str, otherwise: str = "") -> str:
    """The format a log file named ``path`` is written in, from its suffix (:data:`SUFFIXES`).

    A suffix tokenlog does not know (``usage.json``, ``usage.log``, none) raises ``ValueError``: the message
    starts with ``what`` (where the name came from), names the accepted suffixes, and ends with ``otherwise``
    (another way to say the format, where there is one).

    >>> file_format("team/usage.NDJSON", "the sink")
    'jsonl'
    """
    suffix = os.path.splitext(path)[1]
    fmt = SUFFIXES.get(suffix.lower())
    if fmt is None:
        found = f"the suffix {suffix!r}" if suffix else "no suffix"
        raise ValueError(
            f"{what} {path!r} has {found}, which names no log format tokenlog writes: "
            f"end the file name in {KNOWN_SUFFIXES}{otherwise}"
        )
    return fmt


class Second(NamedTuple):
    """One second of time and its text up to the seconds, in str and bytes."""

    start: datetime
    end: datetime  # start + 1 s (start itself in year 9999's last second: then nothing is in range)
    text: str  # "YYYY-MM-DDTHH:MM:SS"
    data: bytes


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_SECOND = timedelta(seconds=1)
last_second = Second(_EPOCH, _EPOCH, "", b"")
"""The last second formatted; replaced whole, so threads read it without a lock."""


def second_of(ts: datetime) -> Second:
    """The second ``ts`` falls in, with its text: cached, because rows come many to a second.

    ``ts`` must be in UTC (record timestamps always are). One range test (two datetime
    comparisons) decides a hit: five times cheaper than comparing six fields, twice as cheap
    as ``isoformat``.
    """
    global last_second
    cached = last_second
    if cached.start <= ts < cached.end:
        return cached
    start = ts.replace(microsecond=0)
    try:
        end = start + _ONE_SECOND
    except OverflowError:  # the very last second datetime holds
        end = start
    text = start.isoformat()[:19]
    last_second = cached = Second(start, end, text, text.encode())
    return cached


def iso_timestamp(ts: datetime) -> str:
    """``ts`` (in UTC) as every format writes it: ``2023-10-27T10:30:00.123456+00:00``."""
    return "%s.%06d+00:00" % (second_of(ts).text, ts.microsecond)  # noqa: UP031 - measured: half an f-string's time


_FRACTION = re.compile(r"[T ][0-9]{2}:[0-9]{2}:[0-9]{2}([.,][0-9]+)")


def utc_timestamp(text: str) -> str | None:
    """An ISO 8601 timestamp with any UTC offset (or ``Z``) as tokenlog writes it, else ``None``.

    The result has the form ``2023-10-27T10:30:00.123456+00:00``: sorting these strings sorts
    by time. A timestamp without an offset is ``None``: its time zone is unknown.

    >>> utc_timestamp("2023-10-27T12:30:00+02:00")
    '2023-10-27T10:30:00.000000+00:00'
    >>> utc_timestamp("2023-10-27T10:30:00.5Z"), utc_timestamp("2023-10-27T10:30:00")
    ('2023-10-27T10:30:00.500000+00:00', None)
    """
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    fraction = _FRACTION.search(text)
    if fraction:  # Python 3.10 parses only ".fff" or ".ffffff": make it ".ffffff"
        text = text[: fraction.start(1)] + "." + fraction.group(1)[1:].ljust(6, "0")[:6] + text[fraction.end(1) :]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.utcoffset() is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
