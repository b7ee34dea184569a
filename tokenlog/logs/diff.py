"""``tokenlog diff``: what changed between two logs (or two time windows of one), and a cost gate for CI.

Each side is totalled by :func:`~tokenlog.logs.report.build_report`, grouped by one dimension (model, function,
session, day or a tag); the groups are matched by name, a group found on one side only counts as 0 on the other.
:attr:`Diff.grew` says whether tokens or cost grew by more than a percentage: ``tokenlog diff --fail-above 10``
exits 1 then.

>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> header = "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\\n"
>>> _ = (folder / "base.csv").write_text(header + "2026-06-01T10:00:00+00:00,mistral-small,100,0,100\\n")
>>> _ = (folder / "head.csv").write_text(header + "2026-06-02T10:00:00+00:00,mistral-small,130,0,130\\n")
>>> change = diff_logs([folder / "base.csv"], [folder / "head.csv"])
>>> change.total.tokens_change, change.grew(20)
(30.0, True)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from .._html import money
from ..pricing import PriceTable
from .report import Report, Totals, build_report

__all__ = ["DIFF_FORMATS", "Change", "Diff", "Side", "diff_logs", "render_diff"]

DIFF_FORMATS = ("table", "markdown", "json")


@dataclass(frozen=True)
class Side:
    """One side of a comparison: its logs and its time window (UTC timestamps, both inclusive; ``None``: open)."""

    paths: tuple[str, ...]
    since: str | None = None
    until: str | None = None

    def describe(self) -> str:
        window = ""
        if self.since or self.until:
            window = f" ({self.since or '...'} to {self.until or '...'})"
        return ", ".join(self.paths) + window


@dataclass(frozen=True)
class Change:
    """One group on both sides. ``tokens_change`` and ``cost_change`` are percentages (``inf`` for a group that is
    new on the head side, ``-100`` for one that is gone); ``cost_change`` is ``None`` when a side's cost is
    unknown (a model without a price)."""

    group: str
    base: Totals
    head: Totals

    @property
    def tokens_change(self) -> float:
        return _percent(self.base.total_tokens, self.head.total_tokens)

    @property
    def cost_change(self) -> float | None:
        if self.base.cost is None or self.head.cost is None:
            return None
        return _percent(self.base.cost, self.head.cost)


@dataclass
class Diff:
    """The groups of both sides, largest head first, and the totals."""

    base: Side
    head: Side
    by: str
    changes: list[Change] = field(default_factory=list)
    total: Change = field(default_factory=lambda: Change("total", Totals(), Totals()))

    def grew(self, percent: float) -> bool:
        """True if total tokens, or the total cost, grew by more than ``percent``."""
        cost = self.total.cost_change
        return self.total.tokens_change > percent or (cost is not None and cost > percent)


def diff_logs(
    base: Sequence[str | os.PathLike[str]],
    head: Sequence[str | os.PathLike[str]],
    *,
    by: str = "model",
    base_window: tuple[str | None, str | None] = (None, None),
    head_window: tuple[str | None, str | None] = (None, None),
    prices: PriceTable | None = None,
) -> Diff:
    """Compare the rows of ``base`` with those of ``head`` (the same files may be both, with other windows)."""
    sides = (
        Side(tuple(os.fspath(p) for p in base), *base_window),
        Side(tuple(os.fspath(p) for p in head), *head_window),
    )
    reports: list[Report] = [
        build_report(side.paths, group_by=(by,), since=side.since, until=side.until, prices=prices) for side in sides
    ]
    found = Diff(sides[0], sides[1], by)
    groups = set(reports[0].groups) | set(reports[1].groups)
    for key in groups:
        found.changes.append(Change(key[0], reports[0].groups.get(key, Totals()), reports[1].groups.get(key, Totals())))
    found.changes.sort(key=lambda change: (-change.head.total_tokens, -change.base.total_tokens, change.group))
    found.total = Change("total", reports[0].total, reports[1].total)
    return found


def _percent(base: float, head: float) -> float:
    if base == 0:
        return 0.0 if head == 0 else math.inf
    return (head - base) / base * 100


def _shown(percent: float | None) -> str:
    if percent is None:
        return "unknown"
    if math.isinf(percent):
        return "new"
    return f"{percent:+.1f}%"


def render_diff(diff: Diff, fmt: str = "table", fail_above: float | None = None) -> str:
    """The comparison as an aligned ``table``, ``markdown`` or ``json``; with ``fail_above``, the verdict too."""
    if fmt == "json":
        return _json(diff, fail_above)
    headings = [diff.by, "base tokens", "head tokens", "change", "base cost", "head cost", "change"]
    rows = [_cells(change) for change in [*diff.changes, diff.total]]
    verdict = _verdict(diff, fail_above)
    notes = [f"base: {diff.base.describe()}", f"head: {diff.head.describe()}", *([verdict] if verdict else [])]
    if fmt == "markdown":
        lines = ["| " + " | ".join(headings) + " |", "|" + "|".join(["---"] + ["--:"] * 6) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
        return "\n".join(lines) + "\n\n" + "  \n".join(notes) + "\n"
    widths = [max(len(row[i]) for row in [headings, *rows]) for i in range(len(headings))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(headings), rule, *(line(row) for row in rows[:-1]), rule, line(rows[-1])]
    return "\n".join(body) + "\n\n" + "\n".join(notes) + "\n"


def _cells(change: Change) -> list[str]:
    return [
        change.group or "(none)",
        f"{change.base.total_tokens:,}",
        f"{change.head.total_tokens:,}",
        _shown(change.tokens_change),
        money(change.base.cost),
        money(change.head.cost),
        _shown(change.cost_change),
    ]


def _verdict(diff: Diff, fail_above: float | None) -> str | None:
    if fail_above is None:
        return None
    tokens, cost = diff.total.tokens_change, diff.total.cost_change
    what = f"tokens {_shown(tokens)}, cost {_shown(cost)}"
    if diff.grew(fail_above):
        return f"FAIL: {what}: more than +{fail_above:g}%"
    return f"OK: {what}: not more than +{fail_above:g}%"


def _json(diff: Diff, fail_above: float | None) -> str:
    def number(value: float | None) -> float | str | None:
        return "new" if value is not None and math.isinf(value) else None if value is None else round(value, 4)

    def entry(change: Change) -> dict[str, object]:
        return {
            diff.by: change.group,
            "base": change.base.as_dict(),
            "head": change.head.as_dict(),
            "tokens_change_pct": number(change.tokens_change),
            "cost_change_pct": number(change.cost_change),
        }

    document = {
        "by": diff.by,
        "base": {"files": list(diff.base.paths), "since": diff.base.since, "until": diff.base.until},
        "head": {"files": list(diff.head.paths), "since": diff.head.since, "until": diff.head.until},
        "groups": [entry(change) for change in diff.changes],
        "total": entry(diff.total),
        "fail_above_pct": fail_above,
        "failed": None if fail_above is None else diff.grew(fail_above),
    }
    return json.dumps(document, indent=2) + "\n"
