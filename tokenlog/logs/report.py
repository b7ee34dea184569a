"""``tokenlog report``: calls, tokens and estimated cost in usage logs, grouped and filtered.

:func:`build_report` streams every row of every log once (CSV, JSONL or SQLite, see
:mod:`tokenlog.logs.read`) and keeps only running totals per group, so its memory does not grow with
the log. :func:`render` turns the result into a table, JSON, CSV or Markdown.

>>> import pathlib, tempfile
>>> path = pathlib.Path(tempfile.mkdtemp()) / "usage.csv"
>>> _ = path.write_text("TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\\n"
...                     "2026-06-01T10:00:00.000000+00:00,mistral-large-latest,1000,200,1200\\n")
>>> report = build_report([path])
>>> report.total.calls, report.total.total_tokens, report.total.cost
(1, 1200, 0.0008)
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from .._html import table
from ..errors import counted
from ..format import utc_timestamp
from ..pricing import STALE_DAYS, BilledUnits, PriceTable, default_prices
from .read import UNIT_COLUMNS, UsageLog, add_row_units, open_log

__all__ = [
    "DIMENSIONS",
    "FORMATS",
    "Report",
    "Totals",
    "build_report",
    "dimension_problem",
    "parse_time",
    "parse_where",
    "render",
]

DIMENSIONS = ("model", "day", "hour", "session", "function", "tag:NAME")
"""What a report groups by; ``tag:NAME`` is the value of the tag ``NAME`` (empty for calls without it)."""


def dimension_problem(name: str) -> str | None:
    """Why ``name`` is not something a report can group by; ``None`` if it is."""
    if name in DIMENSIONS[:-1] or (name.startswith("tag:") and len(name) > 4):
        return None
    return f"expected one of {', '.join(DIMENSIONS)}"


def parse_where(text: str) -> tuple[str, str]:
    """A ``--where`` filter, ``tag:NAME=VALUE``, as ``(NAME, VALUE)``; raise ValueError if it is not one.

    >>> parse_where("tag:team=search")
    ('team', 'search')
    """
    name, equals, value = text.removeprefix("tag:").partition("=")
    if not text.startswith("tag:") or not equals or not name:
        raise ValueError(f"{text!r}: expected tag:NAME=VALUE (tag:team=search)")
    return name, value


"""What ``--by`` can group by; they combine (``--by model,day``)."""

FORMATS = ("table", "json", "csv", "markdown")

_HEADINGS = {"model": "model", "day": "day (UTC)", "hour": "hour (UTC)", "session": "session", "function": "function"}
_COUNTS = ("calls", "prompt_tokens", "completion_tokens", "total_tokens")
_COUNT_HEADINGS = ("calls", "prompt", "completion", "total tokens")
_EXAMPLES = 3  # skipped rows named on standard error; the rest are counted
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class Totals:
    """Calls and tokens of one group, and their estimated cost.

    ``priced_cost`` is the cost of the calls whose model has a price; ``unpriced_calls`` counts the
    others. :attr:`cost` is the whole cost, or ``None`` (unknown) when some call has no price.
    """

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    priced_cost: float = 0.0
    unpriced_calls: int = 0

    @property
    def cost(self) -> float | None:
        """The estimated cost in USD, or ``None`` if a call's model has no price: unknown, never 0."""
        return None if self.unpriced_calls else self.priced_cost

    def _add(self, counts: Sequence[int], cost: float | None) -> None:
        self.calls += counts[0]
        self.prompt_tokens += counts[1]
        self.completion_tokens += counts[2]
        self.total_tokens += counts[3]
        if cost is None:
            self.unpriced_calls += counts[0]
        else:
            self.priced_cost += cost

    def as_dict(self) -> dict[str, int | float | None]:
        """The totals as JSON-ready values; ``cost_usd`` is ``None`` when some call has no price."""
        cost = self.cost
        return {
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": None if cost is None else round(cost, 9),
            "priced_cost_usd": round(self.priced_cost, 9),
            "unpriced_calls": self.unpriced_calls,
        }


@dataclass
class Report:
    """What :func:`build_report` found: totals per group, the grand total, and what it skipped."""

    files: list[str]
    group_by: tuple[str, ...]
    prices: PriceTable
    groups: dict[tuple[str, ...], Totals] = field(default_factory=dict)
    total: Totals = field(default_factory=Totals)
    first: str | None = None
    last: str | None = None
    skipped: int = 0
    examples: list[str] = field(default_factory=list)
    unpriced: dict[str, int] = field(default_factory=dict)
    filters: dict[str, object] = field(default_factory=dict)

    def _repr_html_(self) -> str:
        """A notebook shows a report as its table (the notes under it: what was read, how it was priced)."""
        headings, rows, total = _cells(self)
        notes = "".join(f"<p>{html.escape(note)}</p>" for note in _notes(self) if note)
        return table(headings, [*rows, total] if rows else rows) + notes


def parse_time(text: str, *, end: bool = False) -> str:
    """A ``--since``/``--until`` value as a UTC timestamp string; raise ValueError if it is not a time.

    A date alone means the start of that day, or its end when ``end`` is true (so ``--until`` a
    date includes that day). A time without an offset is taken as UTC.

    >>> parse_time("2026-06-01", end=True)
    '2026-06-01T23:59:59.999999+00:00'
    >>> parse_time("2026-06-01T12:00+02:00")
    '2026-06-01T10:00:00.000000+00:00'
    """
    value = text.strip()
    if _DATE.match(value):
        value += "T23:59:59.999999" if end else "T00:00:00"
    stamp = utc_timestamp(value)
    if stamp is None:
        stamp = utc_timestamp(value + "+00:00")
    if stamp is None:
        raise ValueError(f"{text!r} is not a date or time, expected e.g. 2026-06-01 or 2026-06-01T14:30")
    return stamp


def build_report(
    paths: Iterable[str | os.PathLike[str]],
    *,
    group_by: Sequence[str] = ("model",),
    since: str | None = None,
    until: str | None = None,
    models: Sequence[str] = (),
    prices: PriceTable | None = None,
    reprice: bool = False,
    where: Sequence[tuple[str, str]] = (),
) -> Report:
    """Total the rows of every log in ``paths``; raise :class:`~tokenlog.logs.read.LogFileError` on an unreadable one.

    ``since`` and ``until`` are UTC timestamps from :func:`parse_time` (both inclusive); ``models``
    are model names or glob patterns (``mistral-large*``); ``where`` keeps only calls whose tags have these
    ``(name, value)`` pairs (all of them). A group whose every row has the ``CostUSD`` it was
    priced at when recorded costs their sum, unless ``reprice``: then, as any other, what the table says. Rows that
    are not usage rows (a count
    that is not a non-negative integer, a timestamp without a UTC offset) are skipped and counted.
    """
    for dimension in group_by:
        problem = dimension_problem(dimension)
        if problem:
            raise ValueError(f"cannot group by {dimension!r}, {problem}")
    group_by = tuple(dict.fromkeys(group_by))
    logs = [open_log(path, errors="replace") for path in paths]  # every file is checked before any is read
    report = Report([log.path for log in logs], group_by, prices or default_prices())
    report.filters = {"since": since, "until": until, "model": list(models)}
    if where:
        report.filters["where"] = [f"tag:{name}={value}" for name, value in where]
    sums: dict[tuple[str, ...], list[int]] = {}  # group values + the model (for its price) -> counts
    units: dict[tuple[str, ...], BilledUnits] = {}  # the same keys -> cached tokens, pages, ... (logs that have them)
    for log in logs:
        tagged = _tag_filter(log, where)
        _scan(log, report, sums, since, until, models, tagged)
        if any(log.index(column) is not None for column in UNIT_COLUMNS):
            _scan_units(log, report, units, since, until, models, tagged)
    _price(report, sums, units, reprice)
    return report


def _scan_units(
    log: UsageLog,
    report: Report,
    units: dict[tuple[str, ...], BilledUnits],
    since: str | None,
    until: str | None,
    patterns: Sequence[str],
    tagged: Callable[[list[str]], bool] | None,
) -> None:
    """Add up the priced units of one log's rows, by the keys of :func:`_scan` (a second pass: only for logs
    with unit columns, so the token pass stays plain). A cell that is not a unit's value counts as empty."""
    cells = [log.index(column) for column in UNIT_COLUMNS]
    i_time, i_model = log.columns.index("TimestampUTC"), log.columns.index("Model")
    key_of = _key_function(log, report.group_by, report.prices)
    for row in log.rows():
        if len(row) != len(log.columns) or not all(cell.strip().isdigit() for cell in row[2:5]):
            continue  # a row _scan skipped
        stamp = utc_timestamp(row[i_time])
        if stamp is None or (since is not None and stamp < since) or (until is not None and stamp > until):
            continue
        if patterns and not any(fnmatchcase(row[i_model], pattern) for pattern in patterns):
            continue
        if tagged is not None and not tagged(row):
            continue
        key = key_of(row, stamp)
        billed = units.get(key)
        if billed is None:
            billed = units[key] = BilledUnits()
        add_row_units(billed, [row[i] if i is not None else "" for i in cells], int(row[2]), int(row[3]))


def _scan(
    log: UsageLog,
    report: Report,
    sums: dict[tuple[str, ...], list[int]],
    since: str | None,
    until: str | None,
    patterns: Sequence[str],
    tagged: Callable[[list[str]], bool] | None = None,
) -> None:
    """Add one log's rows to ``sums``: the hot loop, kept to plain operations on strings and ints."""
    column = log.columns.index
    i_time, i_model = column("TimestampUTC"), column("Model")
    i_prompt, i_completion, i_total = column("PromptTokens"), column("CompletionTokens"), column("TotalTokens")
    key_of = _key_function(log, report.group_by, report.prices)
    wanted: dict[str, bool] | None = {} if patterns else None
    first, last = report.first or "~", report.last or ""
    for row in log.rows():
        try:
            prompt, completion, total = int(row[i_prompt]), int(row[i_completion]), int(row[i_total])
            stamp, model = row[i_time], row[i_model]
        except (ValueError, IndexError):
            _skip(report, log, row)
            continue
        if prompt < 0 or completion < 0 or total < 0:
            _skip(report, log, row)
            continue
        if len(stamp) != 32 or stamp[26:] != "+00:00":  # not as tokenlog writes it: parse it
            normal = utc_timestamp(stamp)
            if normal is None:
                _skip(report, log, row)
                continue
            stamp = normal
        if (since is not None and stamp < since) or (until is not None and stamp > until):
            continue
        if wanted is not None:
            keep = wanted.get(model)
            if keep is None:
                keep = wanted[model] = any(fnmatchcase(model, pattern) for pattern in patterns)
            if not keep:
                continue
        if tagged is not None and not tagged(row):
            continue
        if stamp < first:
            first = stamp
        if stamp > last:
            last = stamp
        key = key_of(row, stamp)
        counts = sums.get(key)
        if counts is None:
            sums[key] = [1, prompt, completion, total]
        else:
            counts[0] += 1
            counts[1] += prompt
            counts[2] += completion
            counts[3] += total
    report.first = None if first == "~" else first
    report.last = last or None


def _key_function(
    log: UsageLog, group_by: tuple[str, ...], prices: PriceTable
) -> Callable[[list[str], str], tuple[str, ...]]:
    """The group of a row (:func:`_group_function`), then, when some model has dated prices, the ``from`` date of
    the price in force on the row's day: calls on either side of a price change are priced apart."""
    group_of = _group_function(log, group_by)
    if not prices.dated:
        return group_of
    i_model = log.columns.index("Model")
    periods: dict[tuple[str, str], str] = {}

    def key(row: list[str], stamp: str) -> tuple[str, ...]:
        day = (row[i_model], stamp[:10])
        period = periods.get(day)
        if period is None:
            period = periods[day] = prices.period(*day)
        return (*group_of(row, stamp), period)

    return key


def _group_function(log: UsageLog, group_by: tuple[str, ...]) -> Callable[[list[str], str], tuple[str, ...]]:
    """The group of a row: its values for ``group_by``, then its model (every group is priced by model)."""
    i_model = log.columns.index("Model")
    if group_by == ("model",):
        return lambda row, stamp: (row[i_model],)

    def cell(name: str) -> Callable[[list[str], str], str]:
        index = log.index(name)
        if index is None:
            return lambda row, stamp: ""
        return lambda row, stamp: row[index] if index < len(row) else ""

    parts: dict[str, Callable[[list[str], str], str]] = {
        "model": cell("Model"),
        "session": cell("Session"),
        "function": cell("Function"),
        "day": lambda row, stamp: stamp[:10],
        "hour": lambda row, stamp: stamp[:10] + " " + stamp[11:13] + ":00",
    }
    getters = [parts[name] if name in parts else _tag_reader(log, name[4:]) for name in group_by]
    if "model" not in group_by:
        getters.append(parts["model"])
    return lambda row, stamp: tuple([get(row, stamp) for get in getters])


def _tag_reader(log: UsageLog, name: str) -> Callable[[list[str], str], str]:
    """The value of the tag ``name`` in a row's ``Tags`` (JSON, parsed once per distinct text); ``""`` if none."""
    index = log.index("Tags")
    if index is None:
        return lambda row, stamp: ""
    parsed: dict[str, dict[str, object]] = {}

    def read(row: list[str], stamp: str) -> str:
        text = row[index] if index < len(row) else ""
        tags = parsed.get(text)
        if tags is None:
            try:
                loaded = json.loads(text) if text else {}
            except ValueError:
                loaded = {}
            tags = loaded if isinstance(loaded, dict) else {}
            if len(parsed) < 10_000:  # tags unique to each row must not grow this without bound
                parsed[text] = tags
        value = tags.get(name, "")
        return value if isinstance(value, str) else json.dumps(value)

    return read


def _tag_filter(log: UsageLog, where: Sequence[tuple[str, str]]) -> Callable[[list[str]], bool] | None:
    """A test that a row's tags have every ``(name, value)`` of ``where``; ``None`` when there is no filter."""
    if not where:
        return None
    readers = [(_tag_reader(log, name), value) for name, value in where]
    return lambda row: all(read(row, "") == value for read, value in readers)


def _skip(report: Report, log: UsageLog, row: list[str]) -> None:
    if tuple(row) == log.columns:  # a header repeated mid-file (logs joined with cat): not data
        return
    report.skipped += 1
    if len(report.examples) < _EXAMPLES:
        report.examples.append(f"{log.path}:{log.line}: {log.problem or _why(log, row)}")


def _why(log: UsageLog, row: list[str]) -> str:
    if not row:
        return "is blank"
    for name in ("PromptTokens", "CompletionTokens", "TotalTokens"):
        index = log.columns.index(name)
        if index >= len(row):
            return f"has {len(row)} fields, expected {len(log.columns)}"
        if not row[index].strip().isdigit():
            return f"{name} is {row[index]!r}, expected a non-negative integer"
    return f"TimestampUTC is {row[log.columns.index('TimestampUTC')]!r}, expected an ISO 8601 time with a UTC offset"


def _price(
    report: Report,
    sums: dict[tuple[str, ...], list[int]],
    units: dict[tuple[str, ...], BilledUnits],
    reprice: bool = False,
) -> None:
    """Price each (group, model) sum, with its units, and add it to its group and to the total."""
    width = len(report.group_by)
    model_at = report.group_by.index("model") if "model" in report.group_by else width
    for key in sorted(sums):
        counts, model = sums[key], key[model_at]
        billed = units.get(key)
        if not reprice and billed is not None and billed.recorded_calls == counts[0]:
            cost: float | None = billed.recorded_cost  # priced when recorded, every call of the group
        else:
            when = key[-1] if report.prices.dated and key[-1] else None  # the from date of the price in force
            cost = report.prices.cost(model, counts[1], counts[2], billed, when)
        if cost is None:
            report.unpriced[model] = report.unpriced.get(model, 0) + counts[0]
        report.groups.setdefault(key[:width], Totals())._add(counts, cost)
        report.total._add(counts, cost)


# -- rendering ---------------------------------------------------------------------------------------


def render(report: Report, fmt: str = "table", *, color: bool = False) -> str:
    """The report as text: ``table`` (aligned, for people), ``markdown``, ``csv`` or ``json``."""
    if fmt == "json":
        return _json(report)
    if fmt == "csv":
        return _csv(report)
    if fmt == "markdown":
        return _markdown(report)
    if fmt == "table":
        return _table(report, color=color)
    raise ValueError(f"unknown format {fmt!r}, expected one of {', '.join(FORMATS)}")


def _json(report: Report) -> str:
    groups = [
        {**dict(zip(report.group_by, key, strict=True)), **totals.as_dict()} for key, totals in report.groups.items()
    ]
    document = {
        "files": report.files,
        "group_by": list(report.group_by),
        "filters": report.filters,
        "first": report.first,
        "last": report.last,
        "skipped_rows": report.skipped,
        "prices": {
            "as_of": report.prices.as_of,
            "source": report.prices.source,
            "overrides": report.prices.overrides,
            "age_days": report.prices.age_days(),
        },
        "groups": groups,
        "total": report.total.as_dict(),
        "unpriced_models": report.unpriced,
    }
    return json.dumps(document, indent=2) + "\n"


def _csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*report.group_by, *_COUNTS, "cost_usd"])
    for key, totals in report.groups.items():
        cost = "" if totals.cost is None else f"{totals.cost:.9f}".rstrip("0").rstrip(".")  # no 7.8e-06
        writer.writerow([*key, totals.calls, totals.prompt_tokens, totals.completion_tokens, totals.total_tokens, cost])
    return out.getvalue()


def _cells(report: Report) -> tuple[list[str], list[list[str]], list[str]]:
    """Headings, one row of display cells per group, and the total row."""
    headings = [_HEADINGS.get(name, name) for name in report.group_by] + [*_COUNT_HEADINGS, "cost (USD)"]
    money = _money_format([*report.groups.values(), report.total])

    def numbers(totals: Totals) -> list[str]:
        counts = (totals.calls, totals.prompt_tokens, totals.completion_tokens, totals.total_tokens)
        return [f"{count:,}" for count in counts] + [money(totals)]

    rows = [[value or "-" for value in key] + numbers(totals) for key, totals in report.groups.items()]
    total = ["total"] + [""] * (len(report.group_by) - 1) + numbers(report.total)
    return headings, rows, total


def _money_format(column: Sequence[Totals]) -> Callable[[Totals], str]:
    """How to show costs: one number of decimals for the whole column, enough for its smallest cost."""
    smallest = min((t.priced_cost for t in column if t.priced_cost > 0), default=1.0)
    decimals = 2 if smallest >= 1 else 4 if smallest >= 0.01 else 6

    def money(totals: Totals) -> str:
        if totals.unpriced_calls == totals.calls and totals.calls:
            return "unknown"
        known = f"{totals.priced_cost:,.{decimals}f}"
        return f"{known} + unknown" if totals.unpriced_calls else known

    return money


def _table(report: Report, *, color: bool) -> str:
    headings, rows, total = _cells(report)
    text_columns = len(report.group_by)
    widths = [max(len(row[i]) for row in [headings, *rows, total]) for i in range(len(headings))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if i < text_columns else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    bold, dim, plain = ("\x1b[1m", "\x1b[2m", "\x1b[0m") if color else ("", "", "")
    rule = dim + "  ".join("-" * width for width in widths) + plain
    body = [line(row) for row in rows]
    if "day" in report.group_by or "hour" in report.group_by:  # over time: each row's total tokens as a bar
        bars = _bars([totals.total_tokens for totals in report.groups.values()])
        body = [f"{text.ljust(len(rule))}  {bar}".rstrip() for text, bar in zip(body, bars, strict=True)]
    lines = [bold + line(headings) + plain, rule, *body]
    if rows:
        lines += [rule, bold + line(total) + plain]
    return "\n".join(lines) + "\n\n" + "\n".join(_notes(report)) + "\n"


_EIGHTHS = " ▏▎▍▌▋▊▉"
_BAR = 24  # characters of the longest bar


def _bars(values: Sequence[int]) -> list[str]:
    """Each value as a bar of block characters (eighths of a character), the largest ``_BAR`` characters long."""
    peak = max(values, default=0)
    bars = []
    for value in values:
        eighths = round(value / peak * _BAR * 8) if peak else 0
        bars.append("█" * (eighths // 8) + _EIGHTHS[eighths % 8].strip())
    return bars


def _markdown(report: Report) -> str:
    headings, rows, total = _cells(report)
    text_columns = len(report.group_by)
    align = ["---" if i < text_columns else "--:" for i in range(len(headings))]
    bold_total = [f"**{cell}**" if cell else "" for cell in total]
    lines = [_md_row(headings), _md_row(align), *(_md_row(row) for row in rows)]
    if rows:
        lines.append(_md_row(bold_total))
    return "\n".join(lines) + "\n\n" + " ".join(_notes(report)) + "\n"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _notes(report: Report) -> list[str]:
    """The lines under a table: what was read, and how the cost was estimated."""
    files = report.files[0] if len(report.files) == 1 else f"{len(report.files)} files"
    if report.first is None or report.last is None:
        notes = [f"No calls in {files}" + (" match the filters." if any(report.filters.values()) else ".")]
    else:
        calls = counted(report.total.calls, "call")
        notes = [f"{calls} in {files}, from {_when(report.first)} to {_when(report.last)} UTC."]
    notes.append(f"Cost: estimated with {report.prices.describe()}.")
    if report.prices.stale():
        notes.append(
            f"These prices are more than {STALE_DAYS} days old: check https://mistral.ai/pricing, or give your own"
            " with --prices FILE."
        )
    if report.unpriced:
        unknown = ", ".join(
            f"{model or '(no model)'} ({counted(calls, 'call')})" for model, calls in report.unpriced.items()
        )
        notes.append(f"Cost unknown for {unknown}: add a price with --prices FILE.")
    return notes


def _when(stamp: str) -> str:
    return stamp[:10] + " " + stamp[11:19]
