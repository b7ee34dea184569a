"""Several processes appending to one CSV file at once: throughput, per-call latency and defects.

The hand-written helper only has a ``threading.Lock``, so across processes it races on the header
(two writers both find the file empty) — its defects are counted, not fixed. tokenlog must show none.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.bench_csv import FIELDS, helper_after_call
from benchmarks.bench_overhead import _builder


@dataclass
class ProcessResult:
    """One candidate's run: rows/s over the whole run, latency percentiles, and what is wrong in the file."""

    name: str
    rows_per_s: float
    p50_us: float
    p99_us: float
    headers: int
    bad_lines: int
    missing_rows: int


def _worker(kind: str, path: str, rows: int, start: Any, out: Any) -> None:
    import tokenlog

    build = _builder()
    holder = [build() for _ in range(rows)]
    if kind == "tokenlog":
        sink = tokenlog.CsvSink(path)

        @tokenlog.track_usage(sinks=[sink])
        def call(i: int) -> Any:
            return holder[i]

    else:

        def call(i: int) -> Any:
            return helper_after_call(holder[i], path)

    latencies = [0] * rows
    start.wait()
    began = time.time()
    clock = time.perf_counter_ns
    for i in range(rows):
        t0 = clock()
        call(i)
        latencies[i] = clock() - t0
    ended = time.time()
    latencies.sort()
    out.put((began, ended, latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]))


def _defects(path: str, expected: int) -> tuple[int, int, int]:
    """(header lines, lines that do not parse as a row, rows missing) of a finished file."""
    headers = bad = good = 0
    with open(path, newline="", encoding="utf-8") as handle:
        for fields in csv.reader(handle):
            if fields == FIELDS:
                headers += 1
            elif len(fields) == 5 and all(field.isdigit() for field in fields[2:]):
                good += 1
            else:
                bad += 1
    return headers, bad, expected - good


def run_one(kind: str, processes: int, rows: int) -> ProcessResult:
    """Start ``processes`` spawned writers together, each appending ``rows`` rows to one fresh file."""
    context = multiprocessing.get_context("spawn")
    path = os.path.join(tempfile.mkdtemp(prefix="tokenlog-bench-"), "shared.csv")
    start = context.Event()
    out = context.Queue()
    workers = [context.Process(target=_worker, args=(kind, path, rows, start, out)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    time.sleep(1.0 + 0.25 * processes)  # let every interpreter start and build its responses
    start.set()
    results = [out.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    span = max(r[1] for r in results) - min(r[0] for r in results)
    headers, bad, missing = _defects(path, processes * rows)
    return ProcessResult(
        name=kind,
        rows_per_s=processes * rows / span,
        p50_us=statistics.median(r[2] for r in results) / 1000,
        p99_us=max(r[3] for r in results) / 1000,
        headers=headers,
        bad_lines=bad,
        missing_rows=missing,
    )


def run(processes: int, rows: int, repeats: int) -> list[ProcessResult]:
    """Each candidate ``repeats`` times, alternating, every run on a fresh file."""
    results = []
    for _ in range(repeats):
        for kind in ("hand-written helper", "tokenlog"):
            results.append(run_one("tokenlog" if kind == "tokenlog" else "helper", processes, rows))
    return results
