"""One process appending rows: tokenlog's CSV sink against the hand-written helper and the physical limit.

Also the JSONL and SQLite sinks, each against CsvSink.write in the same run, from one thread and (for SQLite,
whose rows committed together share a transaction) from four threads at once.
"""

from __future__ import annotations

import csv
import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import tokenlog
from benchmarks.bench_overhead import fresh_responses
from benchmarks.common import Result, interleaved, per_call_us
from tokenlog.record import UsageRecord

FIELDS = ["TimestampUTC", "Model", "PromptTokens", "CompletionTokens", "TotalTokens"]
_helper_lock = threading.Lock()


def log_usage_to_csv(model: str, prompt_tokens: int, completion_tokens: int, total_tokens: int, path: str) -> None:
    """The hand-written helper tokenlog replaces, as the usual guide writes it (the reference)."""
    with _helper_lock:
        file_exists = os.path.isfile(path) and os.path.getsize(path) > 0
        with open(path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            if not file_exists:
                writer.writeheader()
            writer.writerow(
                {
                    "TimestampUTC": datetime.now(timezone.utc).isoformat(),
                    "Model": model,
                    "PromptTokens": prompt_tokens,
                    "CompletionTokens": completion_tokens,
                    "TotalTokens": total_tokens,
                }
            )


def helper_after_call(response: Any, path: str) -> Any:
    """What user code does today around each call: read usage by hand, then call the helper."""
    usage = response.usage
    log_usage_to_csv(response.model, usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, path)
    return response


def from_threads(operation: Callable[[int], object], rows: int, threads: int) -> float:
    """Microseconds per call when ``threads`` threads share ``rows`` calls of ``operation``, all at once."""
    per_thread = rows // threads
    ready = threading.Barrier(threads + 1)

    def work() -> None:
        ready.wait()
        for i in range(per_thread):
            operation(i)

    running = [threading.Thread(target=work) for _ in range(threads)]
    for thread in running:
        thread.start()
    ready.wait()
    started = time.perf_counter_ns()
    for thread in running:
        thread.join()
    return (time.perf_counter_ns() - started) / (per_thread * threads) / 1000.0


def run(rows: int, repeats: int) -> dict[str, Result]:
    """Microseconds per row of each candidate, each into its own file."""
    directory = tempfile.mkdtemp(prefix="tokenlog-bench-")
    path = {name: os.path.join(directory, f"{index}.csv") for index, name in enumerate("abcdef")}
    line = b"2026-11-25T10:30:00.123456+00:00,mistral-small-latest,12,5,17\n"
    now = datetime.now(timezone.utc)
    record = UsageRecord(now, "mistral-small-latest", 12, 5, 17)

    limit_fd = os.open(path["a"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def limit(_: int) -> None:
        fcntl.flock(limit_fd, fcntl.LOCK_EX)
        os.write(limit_fd, line)
        fcntl.flock(limit_fd, fcntl.LOCK_UN)

    open_once_fd = os.open(path["b"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def open_once(_: int) -> None:
        text = (
            f"{datetime.now(timezone.utc).isoformat(timespec='microseconds')},{record.model},"
            f"{record.prompt_tokens},{record.completion_tokens},{record.total_tokens}\n"
        )
        fcntl.flock(open_once_fd, fcntl.LOCK_EX)
        os.write(open_once_fd, text.encode())
        fcntl.flock(open_once_fd, fcntl.LOCK_UN)

    sink = tokenlog.CsvSink(path["c"])
    jsonl_sink = tokenlog.JsonlSink(os.path.join(directory, "g.jsonl"))
    sqlite_sink = tokenlog.SqliteSink(os.path.join(directory, "h.db"))
    threads_sink = tokenlog.CsvSink(os.path.join(directory, "i.csv"))
    threads_sqlite = tokenlog.SqliteSink(os.path.join(directory, "j.db"))
    whole_sink = tokenlog.CsvSink(path["e"])
    call, with_responses = fresh_responses(rows)
    tracked_call = tokenlog.track_usage(sinks=[whole_sink])(call)

    def helper_path(i: int) -> Any:
        return helper_after_call(call(i), path["f"])

    def plain(operation: Callable[[int], object]) -> Callable[[int], float]:
        return lambda _: per_call_us(operation, rows)

    candidates = {
        "flock + os.write of a ready line (limit)": plain(limit),
        "open once + format + flock + os.write": plain(open_once),
        "CsvSink.write(record)": plain(lambda _: sink.write(record)),
        "hand-written helper (log_usage_to_csv)": plain(
            lambda _: log_usage_to_csv("mistral-small-latest", 12, 5, 17, path["d"])
        ),
        "whole path: @track_usage + CsvSink": with_responses(tracked_call),
        "whole path: read usage by hand + helper": with_responses(helper_path),
        "JsonlSink.write(record)": plain(lambda _: jsonl_sink.write(record)),
        "SqliteSink.write(record)": plain(lambda _: sqlite_sink.write(record)),
        "CsvSink.write(record), 4 threads": lambda _: from_threads(lambda _: threads_sink.write(record), rows, 4),
        "SqliteSink.write(record), 4 threads": lambda _: from_threads(lambda _: threads_sqlite.write(record), rows, 4),
    }
    try:
        return interleaved(candidates, repeats)
    finally:
        os.close(limit_fd)
        os.close(open_once_fd)
        for opened in (sink, whole_sink, jsonl_sink, sqlite_sink, threads_sink, threads_sqlite):
            opened.close()
