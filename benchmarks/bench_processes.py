"""Several processes appending to one CSV file at once: throughput, per-call latency and defects.

The baseline is the minimal correct writer: the file opened once with ``O_APPEND``; per row the line
formatted from the response (its usage, the current UTC time), a blocking ``fcntl.flock(LOCK_EX)``, one
``os.write`` (the header too, by whoever finds the file empty under the lock), unlock. Measured against it
in the same run: tokenlog (decorator + CsvSink); tokenlog's lock and append alone (``LockedAppendFile``,
the part of CsvSink that waits for the lock) writing the same line, formatted the same way, so that only
the way of waiting and tokenlog's file checks differ; and the hand-written helper. The helper only has a
``threading.Lock``, so across processes it races on the header (two writers both find the file empty):
its defects are counted, not fixed. tokenlog must show none.

Two start modes. ``synchronized``: every worker gets ready (interpreter, imports, responses), then all start
writing at one signal. ``staggered``: the workers are spawned one after another and each starts writing as soon
as it is ready, while the later ones are still importing: writers compete with busy CPUs and with each other.
"""

from __future__ import annotations

import csv
import fcntl
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from benchmarks.bench_csv import FIELDS, helper_after_call
from benchmarks.bench_overhead import _builder

KINDS = ("minimal", "tokenlog", "locked append", "helper")
MODES = ("synchronized", "staggered")
STAGGER = 0.05
"""Seconds between two spawns in the staggered mode."""


@dataclass
class ProcessResult:
    """One candidate's run: rows/s while anyone writes, latency percentiles of every call, what is wrong in the file."""

    name: str
    mode: str
    rows_per_s: float
    p50_us: float
    p99_us: float
    headers: int
    bad_lines: int
    missing_rows: int
    round_number: int = 0
    """Which round of :func:`run`: ratios pair each candidate with the minimal writer of the same round and mode."""


def _line(response: Any) -> bytes:
    """The row a correct writer appends for ``response``: read its usage, stamp the time, format the line."""
    usage = response.usage
    stamp = datetime.now(timezone.utc).isoformat()
    return f"{stamp},{response.model},{usage.prompt_tokens},{usage.completion_tokens},{usage.total_tokens}\n".encode()


def _minimal_writer(path: str, responses: list[Any]) -> Callable[[int], None]:
    """The minimal correct writer's per-row call: format the row of response ``i``, lock, one write, unlock."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    header = (",".join(FIELDS) + "\n").encode()
    flock, write, lock, unlock = fcntl.flock, os.write, fcntl.LOCK_EX, fcntl.LOCK_UN
    first = [True]

    def call(i: int) -> None:
        line = _line(responses[i])
        flock(fd, lock)
        if first[0]:  # the file only grows: once seen non-empty, it needs no header from us
            first[0] = False
            write(fd, header + line if os.lseek(fd, 0, os.SEEK_END) == 0 else line)
        else:
            write(fd, line)
        flock(fd, unlock)

    return call


def _locked_append_writer(path: str, responses: list[Any]) -> Callable[[int], None]:
    """The minimal writer's line through tokenlog's lock and append (what CsvSink does once it has a row)."""
    from tokenlog._append import AppendState, LockedAppendFile

    file = LockedAppendFile(path, 5.0)
    header = (",".join(FIELDS) + "\n").encode()

    def call(i: int) -> None:
        line = _line(responses[i])

        def compose(state: AppendState) -> bytes:
            return header + line if state.size == 0 else line

        if not file.append_known(line, file.generation, i):
            file.append(compose)

    return call


def _worker(kind: str, path: str, rows: int, start: Any, out: Any) -> None:
    import tokenlog

    build = _builder()
    holder = [build() for _ in range(rows)]  # every kind builds the same responses: the same start-up
    if kind == "tokenlog":
        sink = tokenlog.CsvSink(path)

        @tokenlog.track_usage(sinks=[sink])
        def call(i: int) -> Any:
            return holder[i]

    elif kind == "minimal":
        call = _minimal_writer(path, holder)
    elif kind == "locked append":
        call = _locked_append_writer(path, holder)
    else:

        def call(i: int) -> Any:
            return helper_after_call(holder[i], path)

    latencies = [0] * rows
    if start is not None:
        start.wait()
    began = time.time()
    clock = time.perf_counter_ns
    for i in range(rows):
        t0 = clock()
        call(i)
        latencies[i] = clock() - t0
    ended = time.time()
    out.put((began, ended, latencies))


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


def _busy_seconds(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least one worker was writing (the union of the spans)."""
    total, reached = 0.0, float("-inf")
    for began, ended in sorted(spans):
        total += max(0.0, ended - max(began, reached))
        reached = max(reached, ended)
    return total


def run_one(kind: str, mode: str, processes: int, rows: int) -> ProcessResult:
    """``processes`` spawned writers of ``kind`` started in ``mode``, each appending ``rows`` rows to one new file."""
    context = multiprocessing.get_context("spawn")
    path = os.path.join(tempfile.mkdtemp(prefix="tokenlog-bench-"), "shared.csv")
    start = context.Event() if mode == "synchronized" else None
    out = context.Queue()
    workers = [context.Process(target=_worker, args=(kind, path, rows, start, out)) for _ in range(processes)]
    for worker in workers:
        worker.start()
        if start is None:
            time.sleep(STAGGER)
    if start is not None:
        time.sleep(1.0 + 0.25 * processes)  # let every interpreter start and build its responses
        start.set()
    results = [out.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join()
    latencies = sorted(latency for result in results for latency in result[2])
    headers, bad, missing = _defects(path, processes * rows)
    return ProcessResult(
        name=kind,
        mode=mode,
        rows_per_s=processes * rows / _busy_seconds([(r[0], r[1]) for r in results]),
        p50_us=latencies[len(latencies) // 2] / 1000,
        p99_us=latencies[int(len(latencies) * 0.99)] / 1000,
        headers=headers,
        bad_lines=bad,
        missing_rows=missing,
    )


def run(processes: int, rows: int, repeats: int, kinds: tuple[str, ...] = KINDS) -> list[ProcessResult]:
    """Each candidate ``repeats`` times in each mode, interleaved (order reversed every other round), fresh files."""
    results = []
    for round_number in range(repeats):
        for mode in MODES:
            order = kinds[::-1] if round_number % 2 else kinds
            results.extend(replace(run_one(kind, mode, processes, rows), round_number=round_number) for kind in order)
    return results
