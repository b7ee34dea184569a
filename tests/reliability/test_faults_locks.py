"""Another process holds the lock: the call waits a bounded time, then returns and the row is kept; the holder is
killed with SIGKILL without ever letting go, and the next write goes through (OS locks die with their holder).

The holder is a real process: for CSV and JSONL it takes the file's lock through portalocker (``flock``, the
lock tokenlog takes itself); for SQLite it opens a write transaction (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

import tokenlog
from tests.helpers import logged_prompts
from tokenlog import CsvSink, JsonlSink, SqliteSink, UsageRecord, track_usage
from tokenlog.sinks.base import Sink

HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    import portalocker

    kind, path = sys.argv[1], sys.argv[2]
    if kind == "sqlite":
        held = sqlite3.connect(path, isolation_level=None)
        held.execute("BEGIN IMMEDIATE")  # the write lock, until this process ends
    else:
        held = open(path, "a")
        portalocker.lock(held, portalocker.LockFlags.EXCLUSIVE)
    print("locked", flush=True)
    time.sleep(3600)  # never lets go: it will be killed
    """
)


def make_sink(kind: str, path: Path) -> Sink:
    if kind == "csv":
        return CsvSink(path, lock_timeout=0.2)
    if kind == "jsonl":
        return JsonlSink(path, lock_timeout=0.2)
    return SqliteSink(path, timeout=0.1, retries=1)


@pytest.mark.parametrize(("kind", "held"), [("csv", "held its lock"), ("jsonl", "held its lock"), ("sqlite", "locked")])
def test_a_lock_held_by_another_process_delays_the_call_a_bounded_time_and_its_death_frees_it(
    tmp_path: Path, kind: str, held: str
) -> None:
    path = tmp_path / f"usage.{kind}"  # .csv, .jsonl, .sqlite
    sink = make_sink(kind, path)
    sink.write(UsageRecord(datetime.now(timezone.utc), "mistral-small-latest", 0, 1, 1))  # the file exists
    tokenlog.configure(sinks=[sink])

    @track_usage
    def ask(prompt: int) -> dict[str, object]:
        return {"model": "mistral-small-latest", "usage": {"prompt_tokens": prompt, "completion_tokens": 1}}

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, kind, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        with pytest.warns(tokenlog.TokenlogWarning, match=rf"{re.escape(str(path))}.*{held}"):
            assert ask(1)["usage"] == {"prompt_tokens": 1, "completion_tokens": 1}
        assert holder.poll() is None  # the call came back while the lock was still held: the wait is bounded
        ask(2)  # kept behind the first, in order
        (status,) = [s for s in tokenlog.sink_status() if s.sink is sink]
        assert (status.pending, status.lost, status.failing) == (2, 0, True)
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding the lock: it never unlocked
        holder.wait()
    tokenlog.flush()
    ask(3)
    assert logged_prompts(path) == [0, 1, 2, 3]
    (status,) = [s for s in tokenlog.sink_status() if s.sink is sink]
    assert (status.pending, status.failing) == (0, False)


RELEASING_HOLDER = textwrap.dedent(
    """
    import sys
    import portalocker

    held = open(sys.argv[1], "a")
    portalocker.lock(held, portalocker.LockFlags.EXCLUSIVE)
    print("locked", flush=True)
    sys.stdin.readline()  # holds the lock until told to let go
    portalocker.unlock(held)
    print("released", flush=True)
    sys.stdin.readline()
    """
)

PROBE = textwrap.dedent(
    """
    import sys
    import portalocker

    with open(sys.argv[1], "a") as handle:
        try:
            portalocker.lock(handle, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.AlreadyLocked:
            print("busy")
        else:
            print("free")
    """
)


def test_a_writer_waiting_for_the_lock_gets_it_when_released_and_keeps_nothing_locked(tmp_path: Path) -> None:
    """A write waiting for another process's lock gets it once released, and leaves the file unlocked."""
    import threading

    path = tmp_path / "usage.csv"
    sink = CsvSink(path, lock_timeout=30)
    sink.write(UsageRecord(datetime.now(timezone.utc), "first", 1, 1, 2))
    holder = subprocess.Popen(
        [sys.executable, "-c", RELEASING_HOLDER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline() == "locked\n"
        done = threading.Event()
        writer = threading.Thread(
            target=lambda: (sink.write(UsageRecord(datetime.now(timezone.utc), "second", 1, 1, 2)), done.set())
        )
        writer.start()
        assert not done.wait(0.5), "the write must wait while another process holds the lock"
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline() == "released\n"
        writer.join(timeout=30)
        assert done.is_set()
        probe = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True)
        assert probe.stdout == "free\n", "after the append, this process must hold no lock on the file"
    finally:
        holder.kill()
        holder.wait()
    assert [row.split(",")[1] for row in path.read_text().splitlines()[1:]] == ["first", "second"]
