"""How fast ``tokenlog report`` reads a big log, and how much memory it needs, against a plain csv.reader loop.

    python benchmarks/bench_report.py            # 100,000 and 1,000,000 rows (about a minute)
    python benchmarks/bench_report.py --quick    # 10,000 and 100,000 rows

For each size it writes a usage log in a temporary directory (the CSV sink's format, six models, one
row every 1 to 9 seconds), then runs, each in its own process and each ``--repeat`` times:

- ``baseline``: ``python -c`` with a ``csv.reader`` loop that sums the three count columns: the least
  any Python reader of the file must do;
- ``report``: ``python -m tokenlog report FILE`` (grouped by model, the default table);
- ``report --by day,model --format json``: grouping on time as well;
- ``validate`` (checks every byte of every line) and ``merge`` (sorts in runs of 200,000 rows spilled to
  disk), for comparison: neither has a target, but merge's memory must stay bounded too.

Times are the best of the repeats (the machine is shared and noisy, so only the ratio to the baseline,
measured in the same run, means much); peak memory is the child's maximum resident set size, from
``os.wait4``. The report's memory must not grow with the log: its peak at the largest size is
compared with its peak at the smallest. Targets: ``report`` over 1,000,000 rows in at most 3 s, and
memory flat (largest / smallest <= 1.25).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

MODELS = (
    "mistral-small-latest",
    "mistral-large-latest",
    "codestral-latest",
    "mistral-embed",
    "ministral-8b-latest",
    "team-finetune",
)
BASELINE = """
import csv, sys
prompt = completion = total = 0
with open(sys.argv[1], newline="", encoding="utf-8") as handle:
    reader = csv.reader(handle)
    next(reader)
    for row in reader:
        prompt += int(row[2]); completion += int(row[3]); total += int(row[4])
print(prompt, completion, total)
"""
COMMANDS = {
    "baseline (csv.reader loop)": ["-c", BASELINE, "{file}"],
    "tokenlog report": ["-m", "tokenlog", "report", "{file}"],
    "tokenlog report --by day,model --format json": [
        "-m",
        "tokenlog",
        "report",
        "{file}",
        "--by",
        "day,model",
        "--format",
        "json",
    ],
    "tokenlog validate": ["-m", "tokenlog", "validate", "{file}"],
    "tokenlog merge FILE -o OUT --force": ["-m", "tokenlog", "merge", "{file}", "-o", "{file}.merged", "--force"],
}


ENGINES = {
    "duckdb (same totals by model)": (
        "duckdb",
        'import duckdb, sys; print(duckdb.sql("SELECT Model, count(*), sum(PromptTokens), sum(CompletionTokens), '
        'sum(TotalTokens) FROM read_csv(\'" + sys.argv[1] + "\') GROUP BY Model").fetchall())',
    ),
    "polars (same totals by model)": (
        "polars",
        "import polars as pl, sys; print(pl.scan_csv(sys.argv[1]).group_by('Model').agg(pl.len(), "
        "pl.col('PromptTokens').sum(), pl.col('CompletionTokens').sum(), pl.col('TotalTokens').sum()).collect())",
    ),
    "pandas (same totals by model)": (
        "pandas",
        "import pandas as pd, sys; print(pd.read_csv(sys.argv[1], usecols=['Model', 'PromptTokens', "
        "'CompletionTokens', 'TotalTokens']).groupby('Model').agg(['count', 'sum']))",
    ),
}
"""Data-frame engines that answer the report's question (totals by model), measured where installed
(``pip install duckdb polars pandas``: benchmark-only, tokenlog needs none of them)."""
for _name, (_module, _code) in ENGINES.items():
    if importlib.util.find_spec(_module) is not None:
        COMMANDS[_name] = ["-c", _code, "{file}"]


@dataclass
class Measure:
    seconds: float
    peak_mb: float


def write_log(path: Path, rows: int, seed: int = 5) -> None:
    """A usage log as the CSV sink writes it."""
    rng = random.Random(seed)
    moment = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write("TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\n")
        lines = []
        for _ in range(rows):
            moment += timedelta(microseconds=rng.randrange(1_000_000, 9_000_000))
            prompt, completion = rng.randrange(1, 4000), rng.randrange(0, 1000)
            stamp = moment.isoformat(timespec="microseconds")
            lines.append(f"{stamp},{rng.choice(MODELS)},{prompt},{completion},{prompt + completion}\n")
            if len(lines) == 10_000:
                handle.writelines(lines)
                lines.clear()
        handle.writelines(lines)


def measure(arguments: list[str], repeat: int) -> Measure:
    """Best wall time and largest peak RSS of ``python ARGUMENTS`` over ``repeat`` runs."""
    best, peak = float("inf"), 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            error = process.stderr.read().decode() if process.stderr else ""
            raise SystemExit(f"{' '.join(arguments[:4])} failed: {error}")
        best = min(best, elapsed)
        peak = max(peak, usage.ru_maxrss / 1024)  # kilobytes on Linux
    return Measure(best, peak)


def collect(sizes: tuple[int, int], repeat: int) -> dict[tuple[str, int], Measure]:
    """Each command on generated logs of each size: best time and peak memory, keyed by (command, rows)."""
    results: dict[tuple[str, int], Measure] = {}
    with tempfile.TemporaryDirectory(prefix="tokenlog-bench-") as directory:
        for rows in sizes:
            path = Path(directory) / f"usage-{rows}.csv"
            started = time.perf_counter()
            write_log(path, rows)
            print(
                f"wrote {rows:,} rows ({path.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s",
                file=sys.stderr,
            )
            for name, template in COMMANDS.items():
                arguments = [part.replace("{file}", str(path)) for part in template]
                results[name, rows] = measure(arguments, repeat)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 and 100,000 rows instead of 100,000 and 1,000,000")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (default: 3)")
    parser.add_argument("--json", action="store_true", help="print the measures as JSON (for benchmarks.run)")
    args = parser.parse_args()
    sizes = (10_000, 100_000) if args.quick else (100_000, 1_000_000)
    results = collect(sizes, args.repeat)
    if args.json:
        print(json.dumps([[name, rows, m.seconds, m.peak_mb] for (name, rows), m in results.items()]))
        return 0

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, best of {args.repeat} runs\n")
    print(f"{'command':<46} {'rows':>10} {'seconds':>8} {'x baseline':>10} {'peak MB':>8}")
    for (name, rows), result in results.items():
        ratio = result.seconds / results[next(iter(COMMANDS)), rows].seconds
        print(f"{name:<46} {rows:>10,} {result.seconds:>8.2f} {ratio:>10.2f} {result.peak_mb:>8.1f}")

    small, large = sizes
    report = results["tokenlog report", large]
    growth = report.peak_mb / results["tokenlog report", small].peak_mb
    print(f"\nreport memory, {large:,} rows / {small:,} rows: {growth:.2f} (flat: <= 1.25)")
    if not args.quick:
        verdict = "met" if report.seconds <= 3.0 and growth <= 1.25 else "MISSED"
        print(f"target (report over {large:,} rows <= 3 s, memory flat): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
