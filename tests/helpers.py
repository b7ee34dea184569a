"""Small helpers shared by the tests."""

from __future__ import annotations

import csv
import json
import multiprocessing
import multiprocessing.synchronize
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from hypothesis import strategies as st

from tokenlog import UsageRecord


def read_rows(path: Path | str) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts, read with the standard csv module (a strict reader)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def logged_prompts(path: Path) -> list[int]:
    """The PromptTokens of every row of a CSV (``.csv``), JSONL (``.jsonl``) or SQLite (other) log, in order."""
    if path.suffix == ".csv":
        return [int(row["PromptTokens"]) for row in read_rows(path)]
    if path.suffix == ".jsonl":
        return [json.loads(line)["prompt_tokens"] for line in path.read_text().splitlines()]
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        found = [row[0] for row in connection.execute("SELECT prompt_tokens FROM usage ORDER BY rowid")]
    connection.close()
    return found


def _write_usage(
    specs: Sequence[str] | None, worker: int, rows: int, threads: int, start: multiprocessing.synchronize.Event
) -> None:
    """In a spawned process: record ``rows`` calls as ``model-<worker>`` (prompt = worker, completion = i).

    With ``threads`` > 1, thread ``t`` records the calls ``i`` with ``i % threads == t``, all threads at once.
    """
    import threading

    import tokenlog

    if specs is None:
        tokenlog.configure()  # the default CSV file, from $TOKENLOG_FILE
    else:
        tokenlog.configure(sinks=list(specs), on_error="raise")  # a row that cannot be written fails the worker

    @tokenlog.track_usage
    def ask(i: int) -> dict[str, object]:
        return {
            "model": f"model-{worker}",
            "usage": {"prompt_tokens": worker, "completion_tokens": i, "total_tokens": worker + i},
        }

    errors: list[BaseException] = []

    def run(part: int) -> None:
        try:
            for i in range(part, rows, threads):
                ask(i)
        except BaseException as exc:  # a thread's exception would not fail the process: hand it over
            errors.append(exc)

    start.wait()  # every process starts writing at the same moment, onto a file nobody created yet
    if threads == 1:
        run(0)
    else:
        running = [threading.Thread(target=run, args=(part,)) for part in range(threads)]
        for thread in running:
            thread.start()
        for thread in running:
            thread.join()
    if errors:
        raise errors[0]


def run_writer_processes(
    spec: str | Sequence[str] | None, *, processes: int, rows: int, threads: Sequence[int] = ()
) -> None:
    """Spawn ``processes`` processes that each record ``rows`` calls to ``spec`` (None: the default sink) at once.

    ``spec`` is one sink or a list of them (every row goes to each); ``threads[w]`` is how many threads
    process ``w`` records from (default 1).
    """
    specs = None if spec is None else [spec] if isinstance(spec, str) else list(spec)
    run_together(_write_usage, [(specs, w, rows, _threads_of(threads, w)) for w in range(processes)])


def run_together(target: Callable[..., object], args: Sequence[tuple[object, ...]], timeout: float = 600) -> None:
    """Spawn one process per ``args`` entry running ``target(*entry, start)``; set ``start`` (an Event) once all
    are started, so that they begin at once; each must exit with 0."""
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=target, args=(*entry, start)) for entry in args]
    for process in workers:
        process.start()
    start.set()
    for process in workers:
        process.join(timeout=timeout)
        assert process.exitcode == 0


def _threads_of(threads: Sequence[int], worker: int) -> int:
    return threads[worker] if worker < len(threads) else 1


def check_writer_rows(
    rows: Sequence[tuple[str, int, int, int]], *, processes: int, per_process: int, threads: Sequence[int] = ()
) -> None:
    """Every process wrote each of its rows exactly once, each thread in its own order, with consistent numbers."""
    by_worker: dict[int, list[int]] = {}
    for model, prompt, completion, total in rows:
        assert model == f"model-{prompt}"
        assert total == prompt + completion
        by_worker.setdefault(prompt, []).append(completion)
    assert sorted(by_worker) == list(range(processes))
    for worker, completions in by_worker.items():
        assert sorted(completions) == list(range(per_process)), f"worker {worker} lost or repeated a row"
        count = _threads_of(threads, worker)
        for part in range(count):
            assert [i for i in completions if i % count == part] == list(range(part, per_process, count))


def run_tokenlog(
    *args: str, cwd: Path, env: dict[str, str] | None = None, inherit: bool = True
) -> subprocess.CompletedProcess[str]:
    """``python -m tokenlog ARGS`` in a subprocess, with no TOKENLOG_* variables but those in ``env``.

    ``inherit=False`` starts from an empty environment: only ``env``.
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLOG_") and k != "NO_COLOR"}
    if not inherit:
        environment = {}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tokenlog", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_jsonl(path: Path, records: Sequence[UsageRecord]) -> Path:
    """Records as the JSONL sink writes them: one object a line, the UsageRecord field names as keys."""
    with open(path, "w", encoding="utf-8") as handle:
        for r in records:
            item = {
                "timestamp": r.timestamp.isoformat(timespec="microseconds"),
                "model": r.model,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "total_tokens": r.total_tokens,
                "session": r.session,
                "function": r.function,
                "latency_ms": r.latency_ms,
                "request_id": r.request_id,
                "tags": dict(r.tags),
            }
            handle.write(json.dumps(item) + "\n")
    return path


def write_sqlite(path: Path, records: Sequence[UsageRecord]) -> Path:
    """Records as the SQLite sink stores them: a table ``usage``, tags as JSON text, ISO timestamps."""
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE usage (timestamp TEXT, model TEXT, prompt_tokens INTEGER, completion_tokens INTEGER, "
            "total_tokens INTEGER, session TEXT, function TEXT, latency_ms REAL, request_id TEXT, tags TEXT)"
        )
        connection.executemany(
            "INSERT INTO usage VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.timestamp.isoformat(timespec="microseconds"),
                    r.model,
                    r.prompt_tokens,
                    r.completion_tokens,
                    r.total_tokens,
                    r.session,
                    r.function,
                    r.latency_ms,
                    r.request_id,
                    json.dumps(dict(r.tags)),
                )
                for r in records
            ],
        )
    connection.close()
    return path


LOG_HEADER = "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens"
LOG_ROW = "2026-06-01T10:00:00.123456+00:00,mistral-small-latest,12,5,17"
_PIECES = [LOG_ROW, LOG_HEADER, "", ",", '"', "\r", "\x00", "Z", "+02:00", "-1", "1.5", " ", "\n", "\xe9", "\udcff"]


@st.composite
def mutated_logs(draw: st.DrawFn) -> bytes:
    """A small usage log, often broken: pieces (quotes, line breaks, NUL, a byte that is not UTF-8, ...) dropped in."""
    rows = draw(st.lists(st.sampled_from([LOG_ROW, LOG_ROW.replace("17", "18"), ""]), max_size=4))
    lines = [LOG_HEADER, *rows]
    for _ in range(draw(st.integers(0, 3))):
        index = draw(st.integers(0, len(lines) - 1))
        at = draw(st.integers(0, len(lines[index])))
        lines[index] = lines[index][:at] + draw(st.sampled_from(_PIECES)) + lines[index][at + 1 :]
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    data = ending.join(lines) + draw(st.sampled_from([ending, ""]))
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + data.encode("utf-8", "surrogateescape")
