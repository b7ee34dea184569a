"""Waiting for the file lock (tokenlog/_append.py): real processes, real files, real ``flock``.

A waiter first asks again at once, then yields the CPU, then sleeps; whichever way it gets the lock, it must
really hold it when it appends, and a lock that another process never lets go of must still cost at most
``lock_timeout`` seconds, on the per-row path and on the general one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tokenlog import SinkError, _append
from tokenlog._append import AppendState, LockedAppendFile

from ..helpers import run_together

PROCESSES = 4
APPENDS = 300


def _count_on(path: str, appends: int, start: object) -> None:
    """Append the next number after the file's last one, read under the lock: any overlap repeats a number."""

    def next_number(state: AppendState) -> bytes:
        tail = os.pread(state.fd, 32, max(0, state.size - 32)).split(b"\n")
        last = int(tail[-2]) if state.size else 0
        if last % 25 == 0:
            time.sleep(0.002)  # hold the lock a while: the others go past asking again, to yielding and sleeping
        else:
            os.sched_yield()  # widen the window between reading and writing
        return b"%d\n" % (last + 1)

    file = LockedAppendFile(path, lock_timeout=60)
    start.wait()  # type: ignore[attr-defined]
    for _ in range(appends):
        assert file.append(next_number)
    file.close()


def test_waiters_append_only_while_they_hold_the_lock(tmp_path: Path) -> None:
    path = str(tmp_path / "counter.txt")
    run_together(_count_on, [(path, APPENDS)] * PROCESSES, timeout=120)
    numbers = [int(line) for line in Path(path).read_bytes().splitlines()]
    assert numbers == list(range(1, PROCESSES * APPENDS + 1))


HOLDER = textwrap.dedent(
    """
    import fcntl, sys, time

    held = open(sys.argv[1], "a")
    fcntl.flock(held, fcntl.LOCK_EX)  # the lock portalocker takes on POSIX
    print("locked", flush=True)
    time.sleep(3600)  # never lets go: it will be killed
    """
)


@pytest.mark.parametrize("path_taken", ["append_known", "append"])
def test_a_lock_held_for_ever_costs_lock_timeout_on_either_path_then_names_the_file(
    tmp_path: Path, path_taken: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_append, "CHECK_EVERY", 60.0)  # the per-row path's next check is not due while we wait
    path = str(tmp_path / "usage.csv")
    file = LockedAppendFile(path, lock_timeout=0.3)
    assert file.append(lambda state: b"first\n")  # the file is open and looked at: the per-row path applies
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        if path_taken == "append_known":
            attempt = lambda: file.append_known(b"second\n", file.generation, "second")  # noqa: E731
        else:
            attempt = lambda: file.append(lambda state: b"second\n")  # noqa: E731
        started = time.monotonic()
        with pytest.raises(SinkError, match=rf"{re.escape(path)}.*held its lock for more than 0\.3 s"):
            attempt()  # append_known returning False (no wait: a check was due) fails the test as well
        waited = time.monotonic() - started
        assert 0.3 <= waited < 3, waited
        assert holder.poll() is None  # given up while the lock was still held
    finally:
        holder.kill()
        holder.wait()
    assert file.append(lambda state: b"third\n")  # its holder dead, the lock is free again
    assert Path(path).read_bytes() == b"first\nthird\n"
