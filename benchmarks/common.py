"""Timing helpers shared by the benchmarks: interleaved repeats, medians, ratios, a plain table."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Result:
    """Per-operation times (microseconds) of one candidate, one value per repeat."""

    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)


def interleaved(candidates: dict[str, Callable[[int], float]], repeats: int) -> dict[str, Result]:
    """Run every candidate once per repeat, round-robin, so that machine noise hits them alike.

    Each candidate is a function that runs its workload and returns microseconds per operation.
    """
    results = {name: Result(name) for name in candidates}
    for round_number in range(repeats):
        order = list(candidates.items())
        if round_number % 2:
            order.reverse()  # no candidate always runs right after the same neighbour
        for name, run in order:
            results[name].samples.append(run(round_number))
    return results


def per_call_us(operation: Callable[[int], object], count: int) -> float:
    """Microseconds per call of ``operation(i)`` for i in range(count)."""
    started = time.perf_counter_ns()
    for i in range(count):
        operation(i)
    return (time.perf_counter_ns() - started) / count / 1000.0


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (readable as plain text too)."""
    cells = [[str(h) for h in headers]] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |" for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"
    return str(value)


def machine() -> str:
    """One line about where the numbers were measured."""
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
