"""What a budget adds to a decorated call: in-process, and shared through a log nothing was appended to.

Each candidate is ``@track_usage`` with a no-op sink, timed one call at a time on a fresh mistralai response (as
in bench_overhead); the baseline is the same decorator without a budget, measured in the same run. The budgets
never run out (their limits are far away), so every call is checked and charged. "shared" budgets follow a log of
1,000 rows that no one appends to while the clock runs: the check is a ``stat`` of the file (two for SQLite: the
database and its WAL). The ``admit`` rows time the check alone (``Budget.admit``), without the call around it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import tokenlog
from benchmarks.bench_overhead import NoopSink, fresh_responses
from benchmarks.common import Result, interleaved, per_call_us

_FAR = 10**12


def _shared_logs(directory: Path) -> tuple[Path, Path]:
    csv_log, sqlite_log = directory / "team.csv", directory / "team.db"
    sinks = [tokenlog.CsvSink(csv_log), tokenlog.SqliteSink(sqlite_log)]
    with tokenlog.usage_session(sinks=sinks, instrument=False) as session:
        for i in range(1_000):
            session.record({"model": "mistral-small", "usage": {"prompt_tokens": i, "completion_tokens": 1}})
    for sink in sinks:
        sink.close()
    return csv_log, sqlite_log


def run(calls: int, repeats: int) -> dict[str, Result]:
    """Microseconds per call of each candidate."""
    call, timed = fresh_responses(calls)
    directory = Path(tempfile.mkdtemp(prefix="tokenlog-bench-budget-"))
    csv_log, sqlite_log = _shared_logs(directory)
    budgets = {
        "calls": tokenlog.Budget(max_calls=_FAR, warn_at=None),
        "cost": tokenlog.Budget(max_cost_usd=_FAR, warn_at=None),
        "shared CSV": tokenlog.Budget(max_calls=_FAR, shared=csv_log, warn_at=None),
        "shared SQLite": tokenlog.Budget(max_calls=_FAR, shared=sqlite_log, warn_at=None),
    }

    def tracked(budget: tokenlog.Budget | None) -> object:
        return tokenlog.track_usage(sinks=[NoopSink()], budget=budget)(call)

    candidates = {
        "@track_usage, no budget": timed(tracked(None)),  # type: ignore[arg-type]
        "@track_usage, in-process budget (max_calls)": timed(tracked(budgets["calls"])),  # type: ignore[arg-type]
        "@track_usage, in-process budget (max_cost_usd)": timed(tracked(budgets["cost"])),  # type: ignore[arg-type]
        "@track_usage, shared CSV budget": timed(tracked(budgets["shared CSV"])),  # type: ignore[arg-type]
        "@track_usage, shared SQLite budget": timed(tracked(budgets["shared SQLite"])),  # type: ignore[arg-type]
    }
    for name in ("calls", "shared CSV", "shared SQLite"):
        budget = budgets[name]
        candidates[f"Budget.admit alone, {name}"] = lambda _, b=budget: per_call_us(  # type: ignore[misc]
            lambda i: b.admit("mistral-small", False), calls
        )
    return interleaved(candidates, repeats)
