"""BufferedSink batches writes in a background thread and flushes at close, session end and exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import tokenlog
from tests.helpers import read_rows
from tokenlog import BufferedSink, CsvSink, MemorySink, UsageRecord, usage_session

WHEN = datetime(2023, 10, 27, 10, 30, tzinfo=timezone.utc)


def record(i: int) -> UsageRecord:
    return UsageRecord(WHEN, "mistral-small-latest", i, 1, i + 1)


def prompts(path: Path) -> list[int]:
    return [int(row["PromptTokens"]) for row in read_rows(path)] if path.exists() else []


def wait_for(condition: object, seconds: float = 30.0) -> bool:
    """Poll until ``condition()`` is true (the background thread is not ours to join)."""
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_rows_wait_in_the_buffer_and_close_writes_them_all_in_order(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    buffered = BufferedSink(CsvSink(path), max_rows=1000, max_seconds=3600)
    for i in range(10):
        buffered.write(record(i))
    assert prompts(path) == []
    buffered.close()
    assert prompts(path) == list(range(10))


def test_max_rows_sends_a_batch_from_the_background_thread(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    buffered = BufferedSink(CsvSink(path), max_rows=5, max_seconds=3600)
    for i in range(7):
        buffered.write(record(i))
    assert wait_for(lambda: len(prompts(path)) >= 5)
    assert prompts(path)[:5] == [0, 1, 2, 3, 4]
    buffered.close()
    assert prompts(path) == list(range(7))


def test_max_seconds_sends_a_row_that_waited_long_enough(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    buffered = BufferedSink(CsvSink(path), max_rows=1000, max_seconds=0.05)
    buffered.write(record(1))
    assert wait_for(lambda: prompts(path) == [1])
    buffered.write(record(2))  # the thread waits again, for the next row
    assert wait_for(lambda: prompts(path) == [1, 2])
    buffered.close()


def test_a_session_routed_to_a_buffered_sink_flushes_it_when_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    buffered = BufferedSink(CsvSink(path), max_rows=1000, max_seconds=3600)
    with usage_session(sinks=[buffered]) as session:
        session.record({"model": "m", "usage": {"prompt_tokens": 3, "completion_tokens": 1}})
        assert prompts(path) == []
    assert prompts(path) == [3]


def test_a_default_buffered_sink_is_flushed_when_any_session_ends_and_by_tokenlog_flush(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    tokenlog.configure(sinks=[BufferedSink(CsvSink(path), max_rows=1000, max_seconds=3600)])
    with usage_session() as session:
        session.record({"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    assert prompts(path) == [1]
    tokenlog.usage_session().record({"model": "m", "usage": {"prompt_tokens": 2, "completion_tokens": 1}})
    tokenlog.flush()
    assert prompts(path) == [1, 2]


def test_a_failing_inner_sink_keeps_the_batch_and_reports_it_in_the_status(tmp_path: Path) -> None:
    blocker = tmp_path / "dir"
    blocker.write_text("")
    inner = CsvSink(blocker / "usage.csv")
    buffered = BufferedSink(inner, max_rows=1000, max_seconds=3600)
    for i in range(3):
        buffered.write(record(i))
    with pytest.warns(tokenlog.TokenlogWarning, match="usage.csv"):
        buffered.flush()
    (status,) = [s for s in tokenlog.sink_status() if s.sink is inner]
    assert (status.pending, status.failing) == (3, True)
    blocker.unlink()
    blocker.mkdir()
    tokenlog.flush()
    assert prompts(blocker / "usage.csv") == [0, 1, 2]


def test_writing_after_close_opens_it_again() -> None:
    memory = MemorySink()
    buffered = BufferedSink(memory, max_rows=1000, max_seconds=3600)
    buffered.write(record(1))
    buffered.close()
    buffered.write(record(2))
    buffered.close()
    assert [r.prompt_tokens for r in memory.records] == [1, 2]


def test_bad_settings_are_refused_with_the_value() -> None:
    with pytest.raises(ValueError, match="max_rows is 0"):
        BufferedSink(MemorySink(), max_rows=0)
    with pytest.raises(ValueError, match="max_seconds is -1"):
        BufferedSink(MemorySink(), max_seconds=-1)
    with pytest.raises(TypeError, match="needs a sink"):
        BufferedSink("usage.csv")  # type: ignore[arg-type]


def test_a_forked_child_starts_with_an_empty_buffer_and_its_own_thread(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    buffered = BufferedSink(CsvSink(path), max_rows=1000, max_seconds=3600)
    buffered.write(record(0))  # buffered in the parent when it forks
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            buffered.write(record(100))
            buffered.close()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert prompts(path) == [100]  # the child wrote only its own row
    buffered.write(record(1))
    buffered.close()
    assert prompts(path) == [100, 0, 1]


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    import tokenlog

    path, ending = sys.argv[1], sys.argv[2]
    sink = tokenlog.CsvSink(path)
    if ending != "unbuffered-kill":
        sink = tokenlog.BufferedSink(sink, max_rows=1000, max_seconds=3600)
    tokenlog.configure(sinks=[sink])

    @tokenlog.track_usage
    def ask(i):
        return {"model": "mistral-small-latest", "usage": {"prompt_tokens": i, "completion_tokens": 1}}

    for i in range(10):
        ask(i)
    if ending.endswith("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def run_child(path: Path, ending: str) -> int:
    child = subprocess.run([sys.executable, "-c", CHILD, str(path), ending], capture_output=True, timeout=60)
    return child.returncode


def test_a_process_that_exits_normally_writes_its_buffered_rows_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    assert run_child(path, "exit") == 0
    assert prompts(path) == list(range(10))


def test_sigkill_loses_the_buffered_rows_but_never_the_rows_of_an_unbuffered_sink(tmp_path: Path) -> None:
    buffered, unbuffered = tmp_path / "buffered.csv", tmp_path / "unbuffered.csv"
    assert run_child(buffered, "kill") == -signal.SIGKILL
    assert run_child(unbuffered, "unbuffered-kill") == -signal.SIGKILL
    assert prompts(buffered) == []  # they were still in memory: what the docs warn about
    assert prompts(unbuffered) == list(range(10))  # each was in the file before its call returned
