"""``tokenlog report --format html``: one self-contained HTML file with charts, read offline, printed, on a phone.

Everything is aggregated before anything is drawn, so the file's size depends on the number of time buckets,
models and groups, not on the number of rows (a log of 1,000,000 rows makes a file of tens of kilobytes). The
charts are inline SVG built here: no script, no font, no stylesheet or image is loaded from anywhere, so the
report renders the same with the network off. Colours are the Okabe-Ito palette, chosen to stay apart for
readers with any common colour-vision deficiency; every chart names its axis and unit, has a legend, and is
followed by the table of the numbers it draws.

Three passes over the logs: one for the notable calls (the slowest, the most expensive), the tag names and the
time span; one :func:`~tokenlog.logs.report.build_report` by time bucket and model; one by function, session and
tag, added up per dimension here.
"""

from __future__ import annotations

import heapq
import html
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fnmatch import fnmatchcase

from .._html import money, table
from .._version import __version__
from ..format import utc_timestamp
from ..pricing import PriceTable, default_prices
from .read import UNIT_COLUMNS, open_log, row_cost
from .report import Report, Totals, _tag_filter, build_report

__all__ = ["PALETTE", "HtmlReport", "html_report"]

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
"""Okabe and Ito's colours (blue, orange, green, purple, sky blue, vermilion, black, yellow): told apart with
every common colour-vision deficiency. More models than colours: the smallest share "other", in grey."""
OTHER = "#999999"
_TOP = 10  # notable calls shown
_GROUPS = 15  # bars in a breakdown; the rest are one "other" bar
_TAGS = 6  # tag names broken down


@dataclass(order=True)
class NotableCall:
    """One call of the log, kept for the lists of the slowest and the most expensive."""

    key: float
    stamp: str = field(compare=False)
    model: str = field(compare=False)
    function: str = field(compare=False)
    session: str = field(compare=False)
    latency_ms: float | None = field(compare=False)
    total_tokens: int = field(compare=False)
    cost: float | None = field(compare=False)
    request_id: str = field(compare=False)


@dataclass
class _Scan:
    first: str | None = None
    last: str | None = None
    tags: dict[str, int] = field(default_factory=dict)
    slowest: list[NotableCall] = field(default_factory=list)
    priciest: list[NotableCall] = field(default_factory=list)


@dataclass(frozen=True)
class HtmlReport:
    """The page (:attr:`text`), and the report by time bucket and model it was drawn from (its totals, what it
    skipped)."""

    text: str
    report: Report


def html_report(
    paths: Sequence[str | os.PathLike[str]],
    *,
    since: str | None = None,
    until: str | None = None,
    models: Sequence[str] = (),
    prices: PriceTable | None = None,
    reprice: bool = False,
    where: Sequence[tuple[str, str]] = (),
) -> HtmlReport:
    """The HTML report of the rows of ``paths``; the filters and prices as :func:`~tokenlog.logs.report.build_report`
    takes them."""
    prices = prices or default_prices()
    scan = _notable(paths, since, until, models, prices, reprice, where)
    bucket = _bucket_for(scan.first, scan.last)

    def report(group_by: tuple[str, ...]) -> Report:
        return build_report(
            paths,
            group_by=group_by,
            since=since,
            until=until,
            models=models,
            prices=prices,
            reprice=reprice,
            where=where,
        )

    timeline = report(("hour" if bucket == "hour" else "day", "model"))
    tag_names = sorted(scan.tags, key=lambda name: (-scan.tags[name], name))[:_TAGS]
    dimensions = ("function", "session", *(f"tag:{name}" for name in tag_names))
    grouped = report(dimensions)
    return HtmlReport(_page(timeline, grouped, bucket, dimensions, scan, prices), timeline)


# -- the passes ---------------------------------------------------------------------------------------------


def _notable(
    paths: Sequence[str | os.PathLike[str]],
    since: str | None,
    until: str | None,
    patterns: Sequence[str],
    prices: PriceTable,
    reprice: bool,
    where: Sequence[tuple[str, str]],
) -> _Scan:
    """The time span, the tag names (with how many calls carry each), and the slowest and most expensive calls."""
    import json

    scan = _Scan()
    for path in paths:
        log = open_log(path, errors="replace")
        column = log.index
        i_time, i_model = column("TimestampUTC"), column("Model")
        i_prompt, i_completion, i_total = column("PromptTokens"), column("CompletionTokens"), column("TotalTokens")
        i_function, i_session, i_latency = column("Function"), column("Session"), column("LatencyMs")
        i_id, i_tags = column("RequestId"), column("Tags")
        units = [column(name) for name in UNIT_COLUMNS]
        tagged = _tag_filter(log, where)
        mandatory = (i_time, i_model, i_prompt, i_completion, i_total)
        if None in mandatory:  # open_log refuses such a log: never here
            raise ValueError(f"{log.path}: not a usage log")
        for row in log.rows():
            try:
                stamp, model, prompt_text, completion_text, total_text = (row[i] for i in mandatory)  # type: ignore[index]
                prompt, completion, total = int(prompt_text), int(completion_text), int(total_text)
            except (ValueError, IndexError):
                continue
            if min(prompt, completion, total) < 0:
                continue
            if len(stamp) != 32 or stamp[26:] != "+00:00":
                stamp = utc_timestamp(stamp) or ""
                if not stamp:
                    continue
            if (since is not None and stamp < since) or (until is not None and stamp > until):
                continue
            if patterns and not any(fnmatchcase(model, pattern) for pattern in patterns):
                continue
            if tagged is not None and not tagged(row):
                continue
            scan.first = stamp if scan.first is None or stamp < scan.first else scan.first
            scan.last = stamp if scan.last is None or stamp > scan.last else scan.last

            def cell(index: int | None, row: list[str] = row) -> str:
                return row[index] if index is not None and index < len(row) else ""

            text = cell(i_tags)
            if text and text != "{}":
                try:
                    names = json.loads(text)
                except ValueError:
                    names = {}
                for name in names if isinstance(names, dict) else ():
                    scan.tags[name] = scan.tags.get(name, 0) + 1
            cost = row_cost(prices, model, prompt, completion, [cell(i) for i in units], stamp, reprice)
            try:
                latency = float(cell(i_latency)) if cell(i_latency) else None
            except ValueError:
                latency = None
            call = NotableCall(0.0, stamp, model, cell(i_function), cell(i_session), latency, total, cost, cell(i_id))
            if latency is not None:
                _keep(scan.slowest, latency, call)
            if cost is not None:
                _keep(scan.priciest, cost, call)
    scan.slowest.sort(reverse=True)
    scan.priciest.sort(reverse=True)
    return scan


def _keep(top: list[NotableCall], key: float, call: NotableCall) -> None:
    """Keep ``call`` among the ``_TOP`` largest by ``key`` (a min-heap of them)."""
    if len(top) < _TOP:
        heapq.heappush(top, _with_key(call, key))
    elif key > top[0].key:
        heapq.heapreplace(top, _with_key(call, key))


def _with_key(call: NotableCall, key: float) -> NotableCall:
    return NotableCall(key, *(getattr(call, name) for name in _CALL_FIELDS))


_CALL_FIELDS = ("stamp", "model", "function", "session", "latency_ms", "total_tokens", "cost", "request_id")


def _bucket_for(first: str | None, last: str | None) -> str:
    """Hours for up to two days of calls, days for up to 120, months beyond."""
    if first is None or last is None:
        return "day"
    days = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds() / 86_400
    return "hour" if days <= 2 else "day" if days <= 120 else "month"


# -- the page -----------------------------------------------------------------------------------------------


def _page(
    timeline: Report, grouped: Report, bucket: str, dimensions: Sequence[str], scan: _Scan, prices: PriceTable
) -> str:
    total = timeline.total
    files = ", ".join(timeline.files)
    span = "no calls" if scan.first is None or scan.last is None else f"{_when(scan.first)} to {_when(scan.last)} UTC"
    series = _series(timeline, bucket)
    sections = [
        _totals(total, prices, span),
        _over_time(series, bucket),
        *(_breakdown(grouped, dimension, position) for position, dimension in enumerate(dimensions)),
        _by_model(timeline),
        _calls_table("The slowest calls", "slowest", scan.slowest, "latency"),
        _calls_table("The most expensive calls", "priciest", scan.priciest, "cost"),
        _skipped(timeline),
    ]
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return _TEMPLATE.format(
        title=html.escape(f"Token usage: {files}"),
        files=html.escape(files),
        generated=generated,
        version=__version__,
        style=_STYLE,
        body="\n".join(section for section in sections if section),
    )


def _when(stamp: str) -> str:
    return stamp[:19].replace("T", " ")


def _totals(total: Totals, prices: PriceTable, span: str) -> str:
    cost = total.cost
    cards = [
        ("calls", "Calls", f"{total.calls:,}", total.calls),
        ("prompt-tokens", "Prompt tokens", f"{total.prompt_tokens:,}", total.prompt_tokens),
        ("completion-tokens", "Completion tokens", f"{total.completion_tokens:,}", total.completion_tokens),
        ("total-tokens", "Total tokens", f"{total.total_tokens:,}", total.total_tokens),
        ("cost", "Estimated cost", money(cost), "" if cost is None else f"{cost:.9f}"),
    ]
    items = "".join(
        f'<div class="card"><div class="label">{label}</div>'
        f'<div class="value" id="total-{key}" data-value="{value}">{shown}</div></div>'
        for key, label, shown, value in cards
    )
    unpriced = (
        f'<p class="note">{total.unpriced_calls:,} calls are of models without a price: the cost of those is '
        f"unknown (shown: {money(total.priced_cost)} for the others).</p>"
        if total.unpriced_calls
        else ""
    )
    return (
        f'<section id="totals"><h2>Totals</h2><p class="span">{html.escape(span)}</p>'
        f'<div class="cards">{items}</div>{unpriced}<p class="note">Costs are estimates, not a bill: '
        f"{html.escape(prices.describe())}.</p></section>"
    )


@dataclass
class _Series:
    buckets: list[str]
    models: list[str]  # drawn models, largest first; "other" last if any
    tokens: dict[tuple[str, str], int]
    cost: dict[tuple[str, str], float]
    unpriced: set[str]


def _series(timeline: Report, bucket: str) -> _Series:
    tokens: dict[tuple[str, str], int] = {}
    cost: dict[tuple[str, str], float] = {}
    by_model: dict[str, int] = {}
    unpriced: set[str] = set()
    for (when, model), totals in timeline.groups.items():
        key = when[:7] if bucket == "month" else when
        by_model[model] = by_model.get(model, 0) + totals.total_tokens
        tokens[key, model] = tokens.get((key, model), 0) + totals.total_tokens
        cost[key, model] = cost.get((key, model), 0.0) + totals.priced_cost
        if totals.unpriced_calls:
            unpriced.add(model)
    ranked = sorted(by_model, key=lambda m: (-by_model[m], m))
    drawn = ranked[: len(PALETTE)]
    if len(ranked) > len(PALETTE):  # the smallest models share one grey "other"
        for key, model in list(tokens):
            if model not in drawn:
                tokens[key, "other"] = tokens.get((key, "other"), 0) + tokens.pop((key, model))
                cost[key, "other"] = cost.get((key, "other"), 0.0) + cost.pop((key, model))
        drawn.append("other")
    return _Series(sorted({key for key, _ in tokens}), drawn, tokens, cost, unpriced)


def _colour(index: int, model: str) -> str:
    return OTHER if model == "other" else PALETTE[index % len(PALETTE)]


def _over_time(series: _Series, bucket: str) -> str:
    if not series.buckets:
        return ""
    unit = {"hour": "hour", "day": "day", "month": "month"}[bucket]
    charts = []
    charts.append(
        _stacked(
            f"Tokens by {unit}, stacked by model", "tokens", series, series.tokens, "tokens", lambda v: f"{int(v):,}"
        )
    )
    charts.append(
        _stacked(f"Estimated cost by {unit}, stacked by model", "cost", series, series.cost, "USD (estimated)", money)
    )
    rows = [
        [when, model, f"{series.tokens.get((when, model), 0):,}", money(series.cost.get((when, model), 0.0))]
        for when in series.buckets
        for model in series.models
        if (when, model) in series.tokens
    ]
    table = _table(["time (UTC)", "model", "total tokens", "estimated cost"], rows, "table-over-time")
    note = (
        f'<p class="note">Models without a price add no cost here: {html.escape(", ".join(sorted(series.unpriced)))}.'
        "</p>"
        if series.unpriced
        else ""
    )
    return (
        f'<section id="over-time"><h2>Over time</h2>{"".join(charts)}{note}'
        f"<details><summary>The numbers behind these charts</summary>{table}</details></section>"
    )


def _stacked(
    title: str,
    kind: str,
    series: _Series,
    values: Mapping[tuple[str, str], float],
    axis: str,
    shown: Callable[[float], str],
) -> str:
    """A stacked bar chart: one bar per time bucket, one segment per model, with axes, ticks and a legend."""
    totals = [sum(values.get((when, m), 0) for m in series.models) for when in series.buckets]
    peak, ticks = _ticks(max(totals, default=0))
    labels = [shown(tick) if kind == "cost" else _short(tick) for tick in ticks]
    # Room on the left for the longest tick label (about 7 px a character at 11 px) and the axis title.
    width, height, left, bottom, top = 760, 260, 34 + 7 * max(map(len, labels)), 40, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    step = plot_w / len(series.buckets)
    bar = max(step * 0.8, 1.0)
    parts = [
        f'<svg class="chart" id="chart-{kind}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>'
    ]
    for tick, label in zip(ticks, labels, strict=True):
        y = top + plot_h - (tick / peak * plot_h if peak else 0)
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{html.escape(str(label))}</text>'
        )
    label_every = max(1, round(len(series.buckets) / 8))
    for i, when in enumerate(series.buckets):
        x = left + i * step + (step - bar) / 2
        y = top + plot_h
        for index, model in enumerate(series.models):
            value = values.get((when, model), 0)
            if not value or not peak:
                continue
            h = value / peak * plot_h
            y -= h
            parts.append(
                f'<rect class="bar" x="{x:.2f}" y="{y:.2f}" width="{bar:.2f}" height="{h:.2f}" '
                f'fill="{_colour(index, model)}" data-bucket="{html.escape(when)}" data-model="{html.escape(model)}" '
                f'data-value="{value}"><title>{html.escape(when)} {html.escape(model)}: '
                f"{html.escape(shown(value))}</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                f'<text class="tick" x="{left + i * step + step / 2:.1f}" y="{top + plot_h + 16}" '
                f'text-anchor="middle">{html.escape(_bucket_label(when))}</text>'
            )
    parts.append(
        f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}"/>'
        f'<line class="axis" x1="{left}" x2="{width - 10}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
        f'<text class="axis-label" x="14" y="{top + plot_h / 2:.0f}" transform="rotate(-90 14 {top + plot_h / 2:.0f})" '
        f'text-anchor="middle">{html.escape(axis)}</text>'
        f'<text class="axis-label" x="{left + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle">time (UTC)</text>'
        "</svg>"
    )
    legend = "".join(
        f'<li><span class="swatch" style="background:{_colour(i, m)}"></span>{html.escape(m)}</li>'
        for i, m in enumerate(series.models)
    )
    caption = f"<figcaption>{html.escape(title)}</figcaption>"
    return f'<figure>{caption}{"".join(parts)}<ul class="legend">{legend}</ul></figure>'


def _bucket_label(when: str) -> str:
    return when[5:] if len(when) > 7 else when  # "06-01 14:00", "06-01"; a month as it is


def _ticks(peak: float) -> tuple[float, list[float]]:
    """A round top for the axis at or above ``peak``, and 4-5 evenly spaced ticks from 0 to it."""
    if peak <= 0:
        return 0.0, [0.0]
    raw = peak / 4
    magnitude = _magnitude(raw)
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [step * i for i in range(0, 6) if step * i <= peak + step * 0.999]
    return ticks[-1], ticks


def _magnitude(value: float) -> float:
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    while magnitude > value:
        magnitude /= 10
    return magnitude


def _short(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _breakdown(grouped: Report, dimension: str, position: int) -> str:
    """Totals by one dimension (function, session, a tag), as a bar chart of tokens and a table."""
    sums: dict[str, Totals] = {}
    for key, totals in grouped.groups.items():
        _merge(sums.setdefault(key[position] or "(none)", Totals()), totals)
    if not sums or set(sums) == {"(none)"}:
        return ""  # no call says it: nothing to break down
    name = dimension.removeprefix("tag:")
    title = f"By tag {name!r}" if dimension.startswith("tag:") else f"By {dimension}"
    slug = "tag-" + _slug(name) if dimension.startswith("tag:") else dimension
    return _bars_section(title, slug, sums)


def _by_model(timeline: Report) -> str:
    sums: dict[str, Totals] = {}
    for (_, model), totals in timeline.groups.items():
        _merge(sums.setdefault(model, Totals()), totals)
    return _bars_section("By model", "model", sums) if sums else ""


def _merge(into: Totals, totals: Totals) -> None:
    """Add ``totals`` (priced and unpriced calls alike) to ``into``."""
    into.calls += totals.calls
    into.prompt_tokens += totals.prompt_tokens
    into.completion_tokens += totals.completion_tokens
    into.total_tokens += totals.total_tokens
    into.priced_cost += totals.priced_cost
    into.unpriced_calls += totals.unpriced_calls


def _bars_section(title: str, slug: str, sums: dict[str, Totals]) -> str:
    ranked = sorted(sums.items(), key=lambda item: (-item[1].total_tokens, item[0]))
    shown = ranked[:_GROUPS]
    if len(ranked) > _GROUPS:
        rest = Totals()
        for _, totals in ranked[_GROUPS:]:
            _merge(rest, totals)
        shown.append((f"{len(ranked) - _GROUPS:,} others", rest))
    peak = max((totals.total_tokens for _, totals in shown), default=0) or 1
    width, row_h, left = 760, 22, 230
    height = row_h * len(shown) + 30
    bars = [
        f'<svg class="chart" id="chart-{slug}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{html.escape(title)}: total tokens"><title>{html.escape(title)}: total tokens</title>'
    ]
    for i, (label, totals) in enumerate(shown):
        y = 4 + i * row_h
        w = totals.total_tokens / peak * (width - left - 110)
        bars.append(
            f'<text class="tick" x="{left - 8}" y="{y + 14}" text-anchor="end">{html.escape(_cut(label))}</text>'
            f'<rect class="bar" x="{left}" y="{y}" width="{max(w, 0.5):.2f}" height="{row_h - 6}" fill="{PALETTE[0]}" '
            f'data-group="{html.escape(label)}" data-value="{totals.total_tokens}"><title>{html.escape(label)}: '
            f"{totals.total_tokens:,} tokens</title></rect>"
            f'<text class="tick" x="{left + w + 6:.1f}" y="{y + 14}">{totals.total_tokens:,}</text>'
        )
    bars.append(f'<text class="axis-label" x="{left}" y="{height - 6}">total tokens</text></svg>')
    rows = [
        [
            label,
            f"{t.calls:,}",
            f"{t.prompt_tokens:,}",
            f"{t.completion_tokens:,}",
            f"{t.total_tokens:,}",
            money(t.cost),
        ]
        for label, t in shown
    ]
    table = _table(["group", "calls", "prompt", "completion", "total tokens", "estimated cost"], rows, f"table-{slug}")
    return (
        f'<section id="by-{slug}"><h2>{html.escape(title)}</h2><figure>{"".join(bars)}</figure>'
        f"<details><summary>The numbers behind this chart</summary>{table}</details></section>"
    )


def _calls_table(title: str, slug: str, calls: Sequence[NotableCall], by: str) -> str:
    if not calls:
        return ""
    rows = [
        [
            call.stamp[:23].replace("T", " "),
            call.model,
            call.function or "",
            call.session or "",
            "" if call.latency_ms is None else f"{call.latency_ms:,.0f} ms",
            f"{call.total_tokens:,}",
            money(call.cost),
            call.request_id,
        ]
        for call in calls
    ]
    headers = ["time (UTC)", "model", "function", "session", "latency", "total tokens", "estimated cost", "request id"]
    kept = [i for i in range(len(headers)) if any(row[i] for row in rows)]  # a column the log does not have: left out
    table = _table([headers[i] for i in kept], [[row[i] for i in kept] for row in rows], "table-" + slug)
    return f'<section id="{slug}"><h2>{html.escape(title)}</h2><p class="note">By {by}.</p>{table}</section>'


def _skipped(report: Report) -> str:
    if not report.skipped:
        return ""
    examples = "".join(f"<li><code>{html.escape(example)}</code></li>" for example in report.examples)
    return (
        f'<section id="skipped"><h2>Rows skipped</h2><p><span id="skipped-count" data-value="{report.skipped}">'
        f"{report.skipped:,}</span> rows are not usage rows and are left out of every number above; check the file "
        f"with <code>tokenlog validate</code>. The first:</p><ul>{examples}</ul></section>"
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], ident: str) -> str:
    return f'<div class="scroll">{table(headers, rows, ident)}</div>'


def _cut(text: str, width: int = 34) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "tag"


_STYLE = """
:root { color-scheme: light; --ink: #1a1a1a; --muted: #5a5a5a; --rule: #d9d9d9; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 980px; padding: 16px; color: var(--ink); background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 4px; }
h2 { font-size: 1.2rem; margin: 28px 0 8px; border-bottom: 1px solid var(--rule); }
.meta, .note, .span { color: var(--muted); font-size: 0.9rem; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 8px; }
.card { border: 1px solid var(--rule); border-radius: 6px; padding: 8px 10px; }
.card .label { color: var(--muted); font-size: 0.8rem; }
.card .value { font-size: 1.25rem; font-variant-numeric: tabular-nums; }
figure { margin: 12px 0; } figcaption { font-weight: 600; margin-bottom: 4px; }
svg.chart { width: 100%; height: auto; display: block; }
svg .grid { stroke: #ececec; } svg .axis { stroke: #555; } svg .tick { font-size: 11px; fill: #333; }
svg .axis-label { font-size: 12px; fill: #333; }
.legend { list-style: none; padding: 0; margin: 6px 0; display: flex; flex-wrap: wrap; gap: 4px 14px;
  font-size: 0.85rem; }
.swatch { display: inline-block; width: 12px; height: 12px; margin-right: 5px; vertical-align: -1px;
  border: 1px solid #0003; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
svg rect { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85rem; font-variant-numeric: tabular-nums; margin: 6px 0; }
th, td { border-bottom: 1px solid var(--rule); padding: 3px 8px; text-align: left; white-space: nowrap; }
td:not(:first-child) { text-align: right; }
details summary { cursor: pointer; color: var(--muted); }
@media print { body { max-width: none; padding: 0; font-size: 11pt; } details { display: block; }
  details > summary { display: none; } details:not([open]) > :not(summary) { display: block; }
  details::details-content { content-visibility: visible; display: block; }
  section { break-inside: avoid-page; } }
@media (max-width: 600px) { body { padding: 10px; font-size: 14px; } .card .value { font-size: 1.05rem; } }
"""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header><h1>Token usage</h1><p class="meta">{files} · made {generated} by tokenlog {version}, offline</p></header>
{body}
</body>
</html>
"""
