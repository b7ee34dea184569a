"""Small helpers shared by the tests."""

from __future__ import annotations

import csv
import multiprocessing
import multiprocessing.synchronize
from pathlib import Path


def read_rows(path: Path | str) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts, read with the standard csv module (a strict reader)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def chat_response(prompt: int = 10, completion: int = 5, *, model: str = "mistral-small-latest") -> dict[str, object]:
    """The JSON a /v1/chat/completions endpoint returns, as requests/httpx give it."""
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def _write_usage(spec: str | None, worker: int, rows: int, start: multiprocessing.synchronize.Event) -> None:
    """In a spawned process: record ``rows`` calls as ``model-<worker>`` (prompt = worker, completion = i)."""
    import tokenlog

    if spec is None:
        tokenlog.configure()  # the default CSV file, from $TOKENLOG_FILE
    else:
        tokenlog.configure(sinks=[spec], on_error="raise")  # a row that cannot be written fails the worker

    @tokenlog.track_usage
    def ask(i: int) -> dict[str, object]:
        return {
            "model": f"model-{worker}",
            "usage": {"prompt_tokens": worker, "completion_tokens": i, "total_tokens": worker + i},
        }

    start.wait()  # every process starts writing at the same moment, onto a file nobody created yet
    for i in range(rows):
        ask(i)


def run_writer_processes(spec: str | None, *, processes: int, rows: int) -> None:
    """Spawn ``processes`` processes that each record ``rows`` calls to ``spec`` (None: the default sink) at once."""
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [context.Process(target=_write_usage, args=(spec, w, rows, start)) for w in range(processes)]
    for process in workers:
        process.start()
    start.set()
    for process in workers:
        process.join(timeout=300)
        assert process.exitcode == 0


def check_writer_rows(rows: list[tuple[str, int, int, int]], *, processes: int, per_process: int) -> None:
    """Every process wrote each of its rows exactly once, in its own order, with consistent numbers."""
    by_worker: dict[int, list[int]] = {}
    for model, prompt, completion, total in rows:
        assert model == f"model-{prompt}"
        assert total == prompt + completion
        by_worker.setdefault(prompt, []).append(completion)
    assert by_worker == {w: list(range(per_process)) for w in range(processes)}
