"""Writers killed with SIGKILL in the middle of appending: the log still parses, at most the row in flight is
missing, the next writer starts a new line, ``tokenlog validate`` names each cut line and ``tokenlog repair``
moves them aside, verbatim.

The log is made for real: a writer process appends ~16 KB rows (tags full of quotes and commas, a model name with
a comma, so the CSV quotes both) to one CSV and one JSONL file as fast as it can and is killed with SIGKILL at a
random moment; a 16 KB write spans several pages, and the kernel stops a write between pages when SIGKILL
arrives, so some rounds leave a line cut short. Each writer counts, in shared memory, the calls that returned.
After each kill a new writer appends one row. The default run does at least 20 rounds (more until both files hold
a cut line); the stress run (``python -m pytest -m slow``) does 300.
"""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.helpers import run_tokenlog
from tokenlog import CsvSink, JsonlSink, UsageRecord
from tokenlog.sinks._fields import tags_json

PAD = 'say "hi", then ' * 1000  # ~15 KB of quotes and commas
HEADER = "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens,Tags"
STAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}\+00:00")

WRITER = textwrap.dedent(
    """
    import json, os, struct, sys
    import tokenlog

    ack_path, round_, pad, files = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    make = {
        "csv": lambda path: tokenlog.CsvSink(path, extra_fields=("Tags",)),
        "jsonl": tokenlog.JsonlSink,
        "sqlite": tokenlog.SqliteSink,
    }
    tokenlog.configure(sinks=[make[kind](path) for kind, path in files], on_error="raise")
    returned = os.open(ack_path, os.O_RDWR)  # a pwrite per returned call: the kernel keeps it when we are killed

    @tokenlog.track_usage(tags={"round": round_, "pad": pad})
    def ask(i):
        return {"model": "writer, round " + round_, "usage": {"prompt_tokens": i, "completion_tokens": 1}}

    print("ready", flush=True)
    i = 0
    while True:
        ask(i)
        i += 1
        os.pwrite(returned, struct.pack("q", i), 0)  # i calls have returned
    """
)


def model(kind: str, round_: int) -> str:
    return f"{kind}, round {round_}"


def expected_cells(round_: int, prompt: int) -> list[str]:
    """A writer's row as CSV cells, but for its timestamp."""
    tags = tags_json(UsageRecord(datetime.now(timezone.utc), "m", 0, 0, 0, tags={"round": str(round_), "pad": PAD}))
    return ["", model("writer", round_), str(prompt), "1", str(prompt + 1), tags]


@dataclass
class KilledLog:
    """The files the killed writers left, and what the test knows of each round."""

    csv: Path
    jsonl: Path
    returned: list[int] = field(default_factory=list)  # per round: calls that had returned when it was killed
    cut_csv: int = 0  # rounds after which the CSV file ended mid-line
    cut_jsonl: int = 0


def kill_a_writer(directory: Path, round_: int, **files: Path) -> int:
    """Start a writer appending to ``files`` (kind: path), SIGKILL it at a random moment; the calls that returned."""
    ack = directory / f"returned-{round_}"  # counted with pwrite, not a shared mmap (see the fast-path test)
    ack.write_bytes(bytes(8))
    listed = json.dumps([[kind, str(path)] for kind, path in files.items()])
    command = [sys.executable, "-c", WRITER, str(ack), str(round_), PAD, listed]
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert writer.stdout is not None
    assert writer.stdout.readline() == b"ready\n", writer.communicate()[1]
    time.sleep(random.uniform(0, 0.005))
    writer.send_signal(signal.SIGKILL)
    _, errors = writer.communicate()
    assert writer.returncode == -signal.SIGKILL, errors.decode()
    return int(struct.unpack("q", ack.read_bytes())[0])


def make_killed_log(directory: Path, *, rounds: int, most: int) -> KilledLog:
    """Kill writers until at least ``rounds`` rounds ran and each file was left cut at least once (``most`` rounds)."""
    log = KilledLog(directory / "usage.csv", directory / "usage.jsonl")
    for round_ in range(most):
        log.returned.append(kill_a_writer(directory, round_, csv=log.csv, jsonl=log.jsonl))
        log.cut_csv += _ends_mid_line(log.csv)
        log.cut_jsonl += _ends_mid_line(log.jsonl)
        # The next writer: a new process would do the same; a new sink object has its own open file and lock.
        row = UsageRecord(datetime.now(timezone.utc), model("next", round_), 7, 1, 8, tags={"round": str(round_)})
        CsvSink(log.csv, extra_fields=("Tags",)).write(row)
        JsonlSink(log.jsonl).write(row)
        if round_ + 1 >= rounds and log.cut_csv and log.cut_jsonl:
            break
    return log


def _ends_mid_line(path: Path) -> bool:
    """True if the file ends in a line cut short. Not for a missing or empty file (killed before its first row),
    nor for a header cut short (the next writer writes it again, whole)."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as handle:
        if path.suffix == ".csv" and b"\n" not in handle.read(len(HEADER) + 2):
            return False
        handle.seek(-1, 2)
        return handle.read(1) != b"\n"


@dataclass
class CsvRecord:
    line: int
    cells: list[str]


def csv_records(path: Path) -> list[CsvRecord]:
    """Every record after the header, read by Python's csv module in strict mode, with its first physical line."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, strict=True)
        assert next(reader) == HEADER.split(",")
        records, line = [], reader.line_num
        for cells in reader:
            records.append(CsvRecord(line + 1, cells))
            line = reader.line_num
    return records


def is_cut_row(cells: list[str], round_: int, prompt: int) -> bool:
    """True if ``cells`` are the start of the writer's row ``prompt``, cut somewhere (the last cell cut short)."""
    expected = expected_cells(round_, prompt)
    if not 0 < len(cells) <= len(expected):
        return False
    *whole, last = cells
    if len(cells) == 1:
        return re.fullmatch(r"[0-9T:.+-]*", last) is not None
    return (
        STAMP.fullmatch(whole[0]) is not None
        and whole[1:] == expected[1 : len(whole)]
        and expected[len(whole)].startswith(last)
    )


def check_rounds(records: list[CsvRecord], log: KilledLog) -> list[CsvRecord]:
    """Each round: the writer's rows 0..n in order (n = calls returned, or one more), then at most one cut
    row (the one in flight), then the next writer's row on a line of its own. Returns the cut rows."""
    cut: list[CsvRecord] = []
    position = 0
    for round_, returned in enumerate(log.returned):
        whole = 0
        while position < len(records) and records[position].cells[1:] == expected_cells(round_, whole)[1:]:
            assert STAMP.fullmatch(records[position].cells[0])
            whole += 1
            position += 1
        assert whole in (returned, returned + 1), f"round {round_}: {whole} rows, {returned} calls returned"
        if records[position].cells[1:2] != [model("next", round_)]:
            assert whole == returned, f"round {round_}: a whole row in flight and a cut one"
            assert is_cut_row(records[position].cells, round_, whole), records[position]
            cut.append(records[position])
            position += 1
        assert records[position].cells[1:] == [model("next", round_), "7", "1", "8", f'{{"round":"{round_}"}}']
        position += 1
    assert position == len(records)
    return cut


def looks_whole(cells: list[str]) -> bool:
    """A row cut right after the comma before its tags: every mandatory value whole, tags empty. No check can
    tell it from a row recorded without tags; its counts are right."""
    return len(cells) == 6 and cells[5] == ""


def check_jsonl(path: Path, log: KilledLog) -> None:
    lines = path.read_bytes().split(b"\n")
    assert lines.pop() == b""
    position = 0
    for round_, returned in enumerate(log.returned):
        prompts = []
        while True:
            try:
                item = json.loads(lines[position])
            except ValueError:  # the line in flight, cut short: the next writer began a new line after it
                assert lines[position].startswith(b'{"timestamp":"')
                position += 1
                item = json.loads(lines[position])
                assert item["model"] == model("next", round_)
            position += 1
            if item["model"] == model("next", round_):
                break
            assert item["model"] == model("writer", round_)
            assert item["tags"] == {"round": str(round_), "pad": PAD}
            prompts.append(item["prompt_tokens"])
        assert prompts in (list(range(returned)), list(range(returned + 1)))
    assert position == len(lines)


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> KilledLog:
    return make_killed_log(tmp_path_factory.mktemp("killed"), rounds=20, most=200)


def test_the_killed_writers_files_parse_and_miss_at_most_the_row_in_flight(killed: KilledLog) -> None:
    assert killed.cut_csv, "no kill landed mid-write in the CSV file in 200 rounds"
    assert killed.cut_jsonl, "no kill landed mid-write in the JSONL file in 200 rounds"
    cut = check_rounds(csv_records(killed.csv), killed)
    assert len(cut) == killed.cut_csv
    check_jsonl(killed.jsonl, killed)


def test_validate_names_each_cut_line_and_says_it_is_cut_short(killed: KilledLog, tmp_path: Path) -> None:
    cut = check_rounds(csv_records(killed.csv), killed)
    result = run_tokenlog("validate", str(killed.csv), cwd=tmp_path)
    reported: dict[int, list[str]] = {}
    for line in result.stdout.splitlines()[:-1]:
        where, _, message = line.partition(": ")
        if message.startswith("warning: "):
            continue  # the quoted Model column
        reported.setdefault(int(where.rsplit(":", 1)[1]), []).append(message)
    detectable = [record.line for record in cut if not looks_whole(record.cells)]
    assert sorted(reported) == detectable
    assert all(any("cut short" in message for message in messages) for messages in reported.values())
    assert result.returncode == (1 if detectable else 0)


def test_repair_moves_the_cut_lines_verbatim_and_leaves_a_valid_log(killed: KilledLog, tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    shutil.copyfile(killed.csv, path)
    original = path.read_bytes().splitlines(keepends=True)
    cut = [record.line for record in check_rounds(csv_records(path), killed) if not looks_whole(record.cells)]

    result = run_tokenlog("repair", str(path), cwd=tmp_path)

    assert result.returncode == (1 if cut else 0), result.stderr
    lines = f"{len(cut)} broken line{'' if len(cut) == 1 else 's'}"
    assert f"MOVED: {lines} of {path} to {tmp_path / 'usage.broken.csv'}" in result.stdout
    assert path.read_bytes() == b"".join(line for number, line in enumerate(original, 1) if number not in cut)
    side = (tmp_path / "usage.broken.csv").read_bytes().splitlines(keepends=True)
    assert len(side) == 2 * len(cut)
    for number, (note, moved) in zip(cut, zip(side[::2], side[1::2], strict=True), strict=True):
        assert re.match(rb"# tokenlog repair, \S+: %s line %d: " % (re.escape(bytes(path)), number), note), note
        assert moved == original[number - 1]  # verbatim
    after = run_tokenlog("validate", str(path), cwd=tmp_path)
    assert after.returncode == 0, after.stdout
    assert run_tokenlog("repair", str(path), cwd=tmp_path).returncode == 0  # nothing left to move


LIVE_WRITER = textwrap.dedent(
    """
    import os, sys
    import tokenlog

    path, stop, worker = sys.argv[1], sys.argv[2], sys.argv[3]
    tokenlog.configure(sinks=[tokenlog.CsvSink(path, extra_fields=("Tags",))])

    @tokenlog.track_usage(tags={"worker": worker})
    def ask(i):
        return {"model": "live, worker " + worker, "usage": {"prompt_tokens": i, "completion_tokens": 1}}

    ask(0)
    print("ready", flush=True)  # one row is in the file
    i = 1
    while not os.path.exists(stop):
        ask(i)
        i += 1
    print(i)
    """
)


def test_repair_while_writers_append_loses_none_of_their_rows(killed: KilledLog, tmp_path: Path) -> None:
    """Four processes append to the log before, during and after `tokenlog repair` runs on it."""
    path, stop = tmp_path / "usage.csv", tmp_path / "stop"
    shutil.copyfile(killed.csv, path)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", LIVE_WRITER, str(path), str(stop), str(worker)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for worker in range(4)
    ]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n"
    started = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    repair = run_tokenlog("repair", str(path), cwd=tmp_path)
    stop.touch()
    counts = [int(writer.communicate(timeout=120)[0]) for writer in writers]

    assert repair.returncode in (0, 1), repair.stderr
    found = re.search(r"(?:keeps its header and|no broken lines \() ?([0-9,]+) rows", repair.stdout)
    assert found is not None, repair.stdout
    kept = int(found[1].replace(",", ""))
    rows = csv_records(path)
    assert len(rows) > kept  # rows were appended after the repair took the lock
    for worker, count in enumerate(counts):
        mine = [record for record in rows if record.cells[1] == f"live, worker {worker}"]
        assert [int(record.cells[2]) for record in mine] == list(range(count))  # none lost, none twice, in order
        assert mine[0].cells[0] < started  # and before the repair began
    assert run_tokenlog("validate", str(path), cwd=tmp_path).returncode == 0


def test_a_sqlite_writer_killed_at_random_moments_loses_at_most_the_row_in_flight(tmp_path: Path) -> None:
    """Each row is one committed transaction (WAL): a kill can only lose the one not yet committed."""
    path = tmp_path / "usage.db"
    for round_ in range(10):
        returned = kill_a_writer(tmp_path, round_, sqlite=path)
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            made = connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'usage'").fetchone()
            query = "SELECT prompt_tokens FROM usage WHERE model = ? ORDER BY rowid"
            prompts = [prompt for (prompt,) in connection.execute(query, (model("writer", round_),))] if made else []
        connection.close()  # (no table yet: killed before its first row)
        assert prompts in (list(range(returned)), list(range(returned + 1)))


@pytest.mark.slow
def test_stress_three_hundred_kills(tmp_path: Path) -> None:
    log = make_killed_log(tmp_path, rounds=300, most=300)
    check_rounds(csv_records(log.csv), log)
    check_jsonl(log.jsonl, log)
    repaired = run_tokenlog("repair", str(log.csv), cwd=tmp_path)
    assert repaired.returncode in (0, 1), repaired.stderr
    assert run_tokenlog("validate", str(log.csv), cwd=tmp_path).returncode == 0
