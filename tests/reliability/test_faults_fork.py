"""os.fork() at the worst moments: the child neither deadlocks nor writes a row twice.

The locks are real (flock, the sinks' thread locks); the moments are made certain by holding them from another
thread while the main thread forks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

import tokenlog
from tests.helpers import read_rows
from tokenlog import BufferedSink, CallbackSink, CsvSink, JsonlSink, UsageRecord, track_usage
from tokenlog._append import AppendState

DEADLOCK = 60.0  # seconds a child may take before we call it deadlocked (it needs milliseconds)


def record(prompt: int) -> UsageRecord:
    return UsageRecord(datetime.now(timezone.utc), "mistral-small-latest", prompt, 1, prompt + 1)


def fork(child: Callable[[], None]) -> int:
    """Fork; the child runs ``child`` and exits 0, or 1 if it raised."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.12+: "this process is multi-threaded"
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            child()
            status = 0
        finally:
            os._exit(status)
    return pid


def wait_for(pid: int) -> int:
    """The child's exit status; a child still running after DEADLOCK seconds is killed and fails the test."""
    deadline = time.monotonic() + DEADLOCK
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child {pid} was still running after {DEADLOCK:g} s: deadlocked")


@contextlib.contextmanager
def held_in_a_thread(take: Callable[[threading.Event, threading.Event], None]) -> Iterator[None]:
    """Run ``take(holding, release)`` in a thread; yield once it holds what it takes, release on exit."""
    holding, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=take, args=(holding, release))
    thread.start()
    try:
        assert holding.wait(DEADLOCK)
        yield
    finally:
        release.set()
        thread.join()


@pytest.mark.parametrize("kind", [CsvSink, JsonlSink])
def test_a_child_forked_while_another_thread_holds_the_file_lock_writes_through_its_own(
    tmp_path: Path, kind: type[CsvSink] | type[JsonlSink]
) -> None:
    path = tmp_path / "usage.log"
    sink = kind(path)
    sink.write(record(0))

    def append_slowly(holding: threading.Event, release: threading.Event) -> None:
        def compose(state: AppendState) -> bytes | None:
            holding.set()  # this thread holds the sink's thread lock and the file's flock now
            assert release.wait(DEADLOCK)
            return None  # nothing to write

        sink._file.append(compose)

    with held_in_a_thread(append_slowly):
        pid = fork(lambda: sink.write(record(1)))
    assert wait_for(pid) == 0
    sink.write(record(2))
    lines = path.read_text().splitlines()
    assert len(lines) == 3 + (kind is CsvSink)  # each row once (and the CSV header)
    assert [line.count("mistral-small-latest") for line in lines[-3:]] == [1, 1, 1]


def test_a_child_forked_while_a_sink_is_busy_and_a_buffer_holds_rows_writes_only_its_own(tmp_path: Path) -> None:
    """The parent forks while one thread is inside a callback sink (holding its guard's lock) and a
    BufferedSink holds two rows: the child's call returns, and every row is written once, by its own process."""
    path = tmp_path / "usage.csv"
    buffered = BufferedSink(CsvSink(path), max_rows=1000, max_seconds=3600)
    entered, leave = threading.Event(), threading.Event()

    def slow_callback(row: UsageRecord) -> None:
        if row.prompt_tokens == 100:  # only the parent's thread waits here
            entered.set()
            assert leave.wait(DEADLOCK)

    callback = CallbackSink(slow_callback)
    tokenlog.configure(sinks=[buffered, callback])

    @track_usage
    def ask(prompt: int) -> dict[str, object]:
        return {"model": "mistral-small-latest", "usage": {"prompt_tokens": prompt, "completion_tokens": 1}}

    ask(1)
    ask(2)  # both wait in the buffer when the process forks

    def busy(holding: threading.Event, release: threading.Event) -> None:
        thread = threading.Thread(target=ask, args=(100,))
        thread.start()
        assert entered.wait(DEADLOCK)
        holding.set()
        assert release.wait(DEADLOCK)
        leave.set()
        thread.join()

    def child() -> None:
        ask(3)
        tokenlog.flush()
        buffered.close()

    with held_in_a_thread(busy):
        pid = fork(child)
    assert wait_for(pid) == 0
    assert [r["PromptTokens"] for r in read_rows(path)] == ["3"]  # the child wrote its row, not the parent's
    buffered.close()
    assert sorted(int(r["PromptTokens"]) for r in read_rows(path)) == [1, 2, 3, 100]


def test_forking_again_and_again_while_threads_record_in_a_session_never_hangs_a_child(tmp_path: Path) -> None:
    """Two threads record in a loop inside a usage_session while the main thread forks 100 times; each child
    records one row in the same session. Whatever lock a thread held at the fork (the session's, the one that
    remembers recorded responses, a sink's), the child must go on. (Before the fix, about one child in two
    hung on the session's lock or the recorded-responses lock.)"""
    path = tmp_path / "usage.csv"
    seen = [0]
    tokenlog.configure(sinks=[CallbackSink(lambda row: seen.__setitem__(0, seen[0] + 1))])  # cheap: mostly locks
    stop = threading.Event()

    @track_usage
    def ask(prompt: int) -> dict[str, object]:
        return {"model": "mistral-small-latest", "usage": {"prompt_tokens": prompt, "completion_tokens": 1}}

    to_file = track_usage(sinks=[path])(ask.__wrapped__)  # the children write here

    with tokenlog.usage_session("forks") as session:

        def loop() -> None:
            bound = session.bind(ask)
            while not stop.is_set():
                bound(1)

        threads = [threading.Thread(target=loop) for _ in range(2)]
        for thread in threads:
            thread.start()
        try:
            for n in range(100):
                assert wait_for(fork(lambda n=n: to_file(n))) == 0  # type: ignore[misc]
        finally:
            stop.set()
            for thread in threads:
                thread.join()
    assert sorted(int(r["PromptTokens"]) for r in read_rows(path)) == list(range(100))  # each child's row, once
    assert session.calls == seen[0]  # the children's rows were counted only in their own copy of the session
