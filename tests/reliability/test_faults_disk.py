"""A full disk and a read-only file or directory: the call returns its result, one warning names the file, nothing
is half-written, and the rows are written once there is room again, or reported with their count at exit.

The disk fills for real: a child process lowers its own ``RLIMIT_FSIZE`` (the largest file it may write) to a few
hundred bytes past the log's size, so the kernel refuses the next writes with EFBIG, as a full disk refuses them
with ENOSPC (SIGXFSZ, which would kill the child, is ignored). Read-only places are real too: we run as root, for
whom ``chmod`` stops nothing, so the tests write into /sys, where the kernel refuses to create or write files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers import logged_prompts

CHILD = textwrap.dedent(
    """
    import json, os, resource, signal, sys, warnings
    import tokenlog

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing us
    warnings.simplefilter("always")
    spec, path, room, then = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    tokenlog.configure(sinks=[spec])

    @tokenlog.track_usage
    def ask(i):
        return {"model": "mistral-small-latest", "usage": {"prompt_tokens": i, "completion_tokens": 1}}

    ask(0)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # "Disk full" a row or two from now. SQLite appends to its write-ahead log, which starts again at 0 after
    # each checkpoint: for it, a limit of `room` bytes refuses every new 4 KB page.
    limit = room if path.endswith(".db") else os.path.getsize(path) + room
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    results = [ask(i) for i in range(1, 11)]
    assert [r["usage"]["prompt_tokens"] for r in results] == list(range(1, 11))
    with open(path, "rb") as f:
        data = f.read()
    (status,) = tokenlog.sink_status()
    print(json.dumps({"pending": status.pending, "whole_lines": data.endswith(b"\\n")}), flush=True)
    if then == "space-comes-back":
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        tokenlog.flush()
        (status,) = tokenlog.sink_status()
        print(json.dumps({"pending": status.pending, "whole_lines": True}), flush=True)
    elif then == "full-everywhere":
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))  # no file anywhere may grow
    """
)

SINKS = {  # spec, file name, room: bytes the limit leaves past the file's size when the disk "fills"
    "csv": ("{path}", "usage.csv", 200),
    "jsonl": ("{path}", "usage.jsonl", 600),
    "sqlite": ("sqlite:///{path}", "usage.db", 1024),  # for SQLite: the limit itself
}


def run_python(script: str, *args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a new interpreter whose temp directory is ``tmp_path / "temp"`` and whose state directory
    (where rows unwritten at exit go when the log's own directory takes no file) is ``tmp_path / "state"``."""
    child = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path / "temp"), "XDG_STATE_HOME": str(tmp_path / "state")},
    )
    assert child.returncode == 0, child.stderr
    assert not (tmp_path / "temp").exists()  # never the shared temp directory
    return child


Child = tuple[subprocess.CompletedProcess[str], Path, list[dict[str, int]]]


def run_child(tmp_path: Path, kind: str, then: str) -> Child:
    spec, name, room = SINKS[kind]
    path = tmp_path / name
    child = run_python(CHILD, spec.format(path=path), str(path), str(room), then, tmp_path=tmp_path)
    return child, path, [json.loads(line) for line in child.stdout.splitlines()]


def prompts_in(kind: str, path: Path) -> list[int]:
    """The PromptTokens of every row, in file order; the file must read whole (no half row)."""
    if kind != "sqlite":
        assert path.read_bytes().endswith(b"\n")
    return logged_prompts(path)


@pytest.mark.parametrize("kind", sorted(SINKS))
def test_a_full_disk_never_breaks_the_call_leaves_nothing_half_written_and_catches_up(
    tmp_path: Path, kind: str
) -> None:
    child, path, (while_full, after) = run_child(tmp_path, kind, "space-comes-back")
    assert child.stderr.count(": TokenlogWarning: ") == 1  # one warning...
    assert str(path) in child.stderr  # ...naming the file
    assert "File too large" in child.stderr or "disk I/O error" in child.stderr  # ...and the cause (EFBIG)
    assert 1 <= while_full["pending"] <= 10  # some rows had to wait
    assert while_full["whole_lines"] or kind == "sqlite"
    assert after["pending"] == 0
    assert prompts_in(kind, path) == list(range(11))  # all of them, in order, once


@pytest.mark.parametrize("then", ["stays-full", "full-everywhere"])
@pytest.mark.parametrize("kind", sorted(SINKS))
def test_rows_that_never_find_room_are_counted_and_kept_outside_the_log_at_exit(
    tmp_path: Path, kind: str, then: str
) -> None:
    """At exit they go to a file beside the log, or, when no file can grow there either, to standard error. (Before
    the fix, a temp directory that took no file made the exit handler crash, and the rows were lost unsaid.)"""
    child, path, (while_full,) = run_child(tmp_path, kind, then)
    pending = while_full["pending"]
    assert pending >= 1
    assert f"tokenlog: {pending} rows could not be written to " in child.stderr  # the count, at exit
    written = prompts_in(kind, path)
    assert written == list(range(11 - pending))
    fallback = list(tmp_path.glob("tokenlog-unwritten-*.csv"))
    if "they are in" in child.stderr:  # the fallback file had room
        (kept,) = fallback
        assert [int(row["PromptTokens"]) for row in csv.DictReader(io.StringIO(kept.read_text()))] == list(
            range(11 - pending, 11)
        )
    else:  # it had none either (the limit applies to every file): the rows are on standard error
        assert "printed to stderr" in child.stderr
        for prompt in range(11 - pending, 11):
            assert f",mistral-small-latest,{prompt},1,{prompt + 1}\n" in child.stderr


READ_ONLY_CHILD = textwrap.dedent(
    """
    import sys, warnings
    import tokenlog

    warnings.simplefilter("always")
    tokenlog.configure(sinks=[sys.argv[1]])

    @tokenlog.track_usage
    def ask(i):
        return {"model": "mistral-small-latest", "usage": {"prompt_tokens": i, "completion_tokens": 1}}

    assert [ask(i)["usage"]["prompt_tokens"] for i in range(5)] == list(range(5))
    (status,) = tokenlog.sink_status()
    print(status.pending, status.failing, flush=True)
    """
)

# The kernel refuses these even to root: sysfs has no way to create a file, and its read-only attributes no write.
READ_ONLY_FILE = next((p for p in ("/sys/kernel/notes", "/sys/kernel/uevent_seqnum") if os.path.isfile(p)), "")
READ_ONLY_PLACES = {"file": READ_ONLY_FILE, "directory": "/sys/kernel/tokenlog-usage"}


@pytest.mark.skipif(not READ_ONLY_FILE, reason="needs Linux sysfs")
@pytest.mark.parametrize("where", sorted(READ_ONLY_PLACES))
@pytest.mark.parametrize("scheme", ["csv://", "jsonl://", "sqlite:///"])
def test_a_read_only_file_or_directory_never_breaks_the_call_and_the_rows_are_counted_and_kept(
    tmp_path: Path, where: str, scheme: str
) -> None:
    """/sys/kernel/notes is a file nobody may write; /sys/kernel a directory where nobody may create one."""
    target = READ_ONLY_PLACES[where]
    child = run_python(READ_ONLY_CHILD, scheme + target, tmp_path=tmp_path)
    assert child.stdout.split() == ["5", "True"]  # every row kept, none lost
    assert child.stderr.count(": TokenlogWarning: ") == 2  # one when it failed, one at exit
    assert target in child.stderr.split("TokenlogWarning")[0]  # the first names the file
    assert "5 rows could not be written to" in child.stderr
    (kept,) = (tmp_path / "state" / "tokenlog").glob("tokenlog-unwritten-*.csv")  # /sys/kernel takes no file
    assert f"they are in {kept}" in child.stderr
    assert [int(row["PromptTokens"]) for row in csv.DictReader(io.StringIO(kept.read_text()))] == list(range(5))
