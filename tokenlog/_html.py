"""How tables and amounts are shown: HTML tables (a notebook's display of a session or a report, the HTML report)
and USD amounts, one way each."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

__all__ = ["money", "table"]


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], ident: str | None = None, caption: str = "") -> str:
    """An HTML ``<table>`` of ``rows`` under ``headers``, every cell escaped; the first column reads as a label."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    attributes = f' id="{html.escape(ident)}"' if ident else ""
    title = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table{attributes}>{title}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def money(value: float | None) -> str:
    """One amount of USD as a page shows it, with two significant digits at least: ``$1,234.50``, ``$0.42``,
    ``$0.00013``; ``unknown`` for ``None`` (a model without a price), never 0.

    >>> money(1234.5), money(0.42), money(0.000134), money(None)
    ('$1,234.50', '$0.42', '$0.00013', 'unknown')
    """
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    if value >= 1:
        return f"${value:,.2f}"
    decimals = 2
    while value < 10 ** -(decimals - 1) and decimals < 9:
        decimals += 1
    return f"${value:.{decimals}f}"
