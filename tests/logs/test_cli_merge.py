"""``tokenlog merge``: logs from several processes and formats become one valid, sorted, duplicate-free file."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.helpers import mutated_logs, read_rows, run_tokenlog, write_jsonl, write_sqlite
from tokenlog import CsvSink, UsageRecord
from tokenlog.logs.merge import merge_logs
from tokenlog.logs.read import LogFileError
from tokenlog.logs.validate import LogCheck
from tokenlog.sinks.csv import MANDATORY_COLUMNS

HEADER = ",".join(MANDATORY_COLUMNS)
START = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)

WORKER = textwrap.dedent(
    """
    import sys
    import tokenlog

    log_file, name, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tokenlog.configure(sinks=[tokenlog.CsvSink(log_file, extra_fields=("Session", "Function"))])

    @tokenlog.track_usage
    def ask(i):
        return {"model": "mistral-small-latest", "usage": {"prompt_tokens": i, "completion_tokens": 1}}

    with tokenlog.usage_session(name):
        for i in range(calls):
            ask(i)
    tokenlog.flush()
    """
)


def run_workers(jobs: list[tuple[Path, str]], calls: int) -> None:
    """Start every worker at once (real processes appending through the CSV sink), then wait for all."""
    processes = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), name, str(calls)]) for path, name in jobs]
    for process in processes:
        assert process.wait(timeout=120) == 0


def record(seconds: float, model: str = "mistral-small-latest", prompt: int = 10, **context: object) -> UsageRecord:
    return UsageRecord(START + timedelta(seconds=seconds), model, prompt, 5, prompt + 5, **context)  # type: ignore[arg-type]


def write_csv(path: Path, records: list[UsageRecord], extra: tuple[str, ...] = ()) -> Path:
    sink = CsvSink(path, extra_fields=extra)
    sink.write_many(records)
    sink.close()
    return path


def merge(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_tokenlog("merge", *args, cwd=cwd)


def test_logs_written_by_several_processes_merge_into_one_valid_sorted_file(tmp_path: Path) -> None:
    machines = [(tmp_path / f"machine-{i}.csv", f"machine-{i}") for i in range(3)]
    shared = tmp_path / "shared.csv"
    run_workers([*machines, (shared, "shared-a"), (shared, "shared-b"), (shared, "shared-c")], calls=200)
    inputs = [str(path) for path, _ in machines] + [str(shared)]
    result = merge(*inputs, "-o", "merged.csv", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "Merged 1,200 rows from 4 files into merged.csv: 1,200 rows, 0 exact duplicates removed" in result.stdout
    merged = tmp_path / "merged.csv"
    rows = read_rows(merged)
    assert merged.read_text().splitlines()[0] == f"{HEADER},Session,Function"
    assert merged.read_text().count("TimestampUTC") == 1
    stamps = [row["TimestampUTC"] for row in rows]
    assert stamps == sorted(stamps)
    everything = [row for path in inputs for row in read_rows(path)]
    assert Counter(tuple(row.values()) for row in rows) == Counter(tuple(row.values()) for row in everything)
    assert Counter(row["Session"] for row in rows) == {name: 200 for _, name in machines} | {
        "shared-a": 200,
        "shared-b": 200,
        "shared-c": 200,
    }
    validated = run_tokenlog("validate", "merged.csv", cwd=tmp_path)
    assert validated.returncode == 0, validated.stdout


def test_exact_duplicates_are_written_once_and_near_duplicates_kept(tmp_path: Path) -> None:
    first = write_csv(tmp_path / "a.csv", [record(0), record(1), record(2)])
    second = write_csv(tmp_path / "b.csv", [record(1), record(2), record(2, prompt=11), record(3)])
    result = merge(str(first), str(second), "-o", "out.csv", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "7 rows from 2 files into out.csv: 5 rows, 2 exact duplicates removed" in result.stdout
    rows = read_rows(tmp_path / "out.csv")
    assert [(row["TimestampUTC"][17:19], row["PromptTokens"]) for row in rows] == [
        ("00", "10"),
        ("01", "10"),
        ("02", "10"),
        ("02", "11"),
        ("03", "10"),
    ]


def test_columns_are_the_union_of_the_inputs_in_the_sinks_order(tmp_path: Path) -> None:
    plain = write_csv(tmp_path / "plain.csv", [record(1)])
    rich = write_csv(
        tmp_path / "rich.csv",
        [record(0, session="eval", tags={"team": "a, b", "note": 'say "hi"'})],
        extra=("Tags", "Session"),
    )
    result = merge(str(plain), str(rich), "-o", "out.csv", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "out.csv")
    assert list(rows[0]) == [*MANDATORY_COLUMNS, "Session", "Tags"]
    assert rows[0]["Session"] == "eval"
    assert rows[0]["Tags"] == '{"note":"say \\"hi\\"","team":"a, b"}'
    assert (rows[1]["Session"], rows[1]["Tags"]) == ("", "")
    assert run_tokenlog("validate", "out.csv", cwd=tmp_path).returncode == 0


def test_jsonl_and_sqlite_logs_merge_with_csv_logs(tmp_path: Path) -> None:
    csv_log = write_csv(tmp_path / "a.csv", [record(0), record(3)])
    jsonl_log = write_jsonl(tmp_path / "b.jsonl", [record(1, session="s", request_id="r1")])
    sqlite_log = write_sqlite(tmp_path / "c.db", [record(2, tags={"k": "v"}), record(3)])
    result = merge(str(csv_log), str(jsonl_log), str(sqlite_log), "-o", "out.csv", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    rows = read_rows(tmp_path / "out.csv")
    assert "5 rows from 3 files into out.csv: 4 rows, 1 exact duplicate removed" in result.stdout  # record(3)
    assert [row["TimestampUTC"][17:19] for row in rows] == ["00", "01", "02", "03"]
    assert rows[1]["Session"] == "s"
    assert rows[1]["RequestId"] == "r1"
    assert rows[2]["Tags"] == '{"k":"v"}'
    assert run_tokenlog("validate", "out.csv", cwd=tmp_path).returncode == 0


def test_timestamps_with_other_offsets_are_written_in_utc_and_sorted_by_time(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        f"{HEADER}\n"
        "2026-06-01T11:00:00+02:00,m,1,1,2\n"  # 09:00 UTC
        "2026-06-01T08:30:00Z,m,1,1,2\n"
        "2026-06-01T09:15:00.5+00:00,m,1,1,2\n"
    )
    assert merge(str(source), "-o", "out.csv", cwd=tmp_path).returncode == 0
    assert [row["TimestampUTC"] for row in read_rows(tmp_path / "out.csv")] == [
        "2026-06-01T08:30:00.000000+00:00",
        "2026-06-01T09:00:00.000000+00:00",
        "2026-06-01T09:15:00.500000+00:00",
    ]


def test_invalid_rows_stop_the_merge_and_nothing_is_written(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [record(0), record(1)])
    with open(source, "a") as handle:
        handle.write("2026-06-01T10:00:00+00:00,m,1,1,3\n")
        handle.write("2026-06-01T10:00:00,m,1,1,2\n")
        handle.write("2026-06-01T10:00:01.000000+00:00,m,1,1,2")  # a writer killed before the line break
    result = merge(str(source), "-o", "out.csv", cwd=tmp_path)

    assert result.returncode == 1
    assert not (tmp_path / "out.csv").exists()
    assert f"{source}:4: TotalTokens is 3, expected 2" in result.stderr
    assert f"{source}:5: TimestampUTC '2026-06-01T10:00:00' has no UTC offset" in result.stderr
    assert f"{source}:6: the last line has no line break" in result.stderr
    assert "tokenlog merge: 3 invalid rows, nothing written" in result.stderr
    assert result.stdout == ""

    skipping = merge(str(source), "-o", "out.csv", "--skip-invalid", cwd=tmp_path)
    assert skipping.returncode == 0
    assert "3 invalid rows skipped" in skipping.stdout
    assert f"skipped {source}:4: TotalTokens is 3" in skipping.stderr
    assert len(read_rows(tmp_path / "out.csv")) == 2


def test_a_row_whose_tags_were_cut_short_is_invalid_as_validate_says(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [record(0, tags={"team": "a"})], extra=("Tags",))
    with open(source, "a") as handle:
        handle.write('2026-06-01T10:00:00.000000+00:00,m,1,1,2,"{""team"":""a"\n')  # cut, its quote closed
    result = merge(str(source), "-o", "out.csv", cwd=tmp_path)
    assert result.returncode == 1
    assert f'{source}:3: Tags is \'{{"team":"a\', expected empty or a JSON object' in result.stderr
    assert next(LogCheck(source).problems()).line == 3


def test_a_header_repeated_by_cat_is_not_a_row(tmp_path: Path) -> None:
    first = write_csv(tmp_path / "a.csv", [record(0)])
    second = write_csv(tmp_path / "b.csv", [record(1)])
    joined = tmp_path / "joined.csv"
    joined.write_text(first.read_text() + second.read_text())
    assert merge(str(joined), "-o", "out.csv", cwd=tmp_path).returncode == 0
    assert len(read_rows(tmp_path / "out.csv")) == 2


def test_the_output_is_never_overwritten_without_force_and_never_an_input(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [record(0)])
    existing = tmp_path / "out.csv"
    existing.write_text("keep me\n")

    refused = merge(str(source), "-o", str(existing), cwd=tmp_path)
    assert refused.returncode == 2
    assert f"{existing} exists: use --force to replace it" in refused.stderr
    assert existing.read_text() == "keep me\n"

    forced = merge(str(source), "-o", str(existing), "--force", cwd=tmp_path)
    assert forced.returncode == 0
    assert len(read_rows(existing)) == 1

    into_input = merge(str(source), str(existing), "-o", "./in.csv", "--force", cwd=tmp_path)
    assert into_input.returncode == 2
    assert "./in.csv is also an input" in into_input.stderr
    assert len(read_rows(source)) == 1


def test_the_output_appears_whole_with_ordinary_permissions_and_no_leftovers(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [record(i) for i in range(10)])
    assert merge(str(source), "-o", "out.csv", cwd=tmp_path).returncode == 0
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "out.csv").stat().st_mode) == 0o666 & ~mask
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in.csv", "out.csv"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv", "-o", "out.csv"], "missing.csv: no such file"),
        (["in.csv"], "the following arguments are required: -o/--output"),
        (["in.csv", "-o", "nowhere/out.csv"], "nowhere/out.csv: its directory does not exist"),
        (["in.csv", "-o", "."], ".: is a directory"),
        (["foreign.csv", "-o", "out.csv"], "not a usage log"),
    ],
)
def test_usage_errors_exit_2_and_write_nothing(tmp_path: Path, args: list[str], message: str) -> None:
    write_csv(tmp_path / "in.csv", [record(0)])
    (tmp_path / "foreign.csv").write_text("a,b\n1,2\n")
    result = merge(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "out.csv").exists()


def test_large_merges_sort_in_runs_on_disk_and_give_the_same_file(tmp_path: Path) -> None:
    shuffled = [record((i * 7919) % 1000, prompt=i % 5) for i in range(1000)]  # out of order, with duplicates
    first = write_csv(tmp_path / "a.csv", shuffled[:600])
    second = write_csv(tmp_path / "b.csv", shuffled[400:])
    in_memory = merge_logs([first, second], tmp_path / "memory.csv")
    in_runs = merge_logs([first, second], tmp_path / "runs.csv", run_rows=64)

    assert (in_memory.rows_written, in_memory.duplicates) == (in_runs.rows_written, in_runs.duplicates)
    assert in_memory.duplicates == 200
    assert (tmp_path / "memory.csv").read_bytes() == (tmp_path / "runs.csv").read_bytes()


def test_the_console_script_merges_too(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [record(0)])
    script = shutil.which("tokenlog", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run(
        [script, "merge", str(source), "-o", str(tmp_path / "out.csv")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.csv").exists()


def test_bytes_that_are_not_utf8_and_nul_bytes_are_invalid_rows_at_their_line(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(
        f"{HEADER}\n".encode()
        + b"2026-06-01T10:00:00+00:00,caf\xe9,1,1,2\n"
        + b"2026-06-01T10:00:01+00:00,m\x00,1,1,2\n"
        + b"2026-06-01T10:00:02+00:00,m,1,1,2\n"
    )
    result = merge(str(source), "-o", "out.csv", cwd=tmp_path)
    assert result.returncode == 1
    assert f"{source}:2: is not valid UTF-8" in result.stderr
    assert f"{source}:3: holds a NUL byte or a carriage return" in result.stderr


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated_logs())
def test_whatever_the_inputs_hold_the_merged_file_validates(tmp_path: Path, data: bytes) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(data)
    output = tmp_path / "out.csv"
    try:
        result = merge_logs([source, source], output, skip_invalid=True)
    except LogFileError:
        return  # not a usage log at all (its header is broken): nothing to merge
    check = LogCheck(output)
    problems = list(check.problems())
    assert check.errors == 0, problems  # warnings (a quoted Model) are fine
    assert check.rows == result.rows_written


def test_a_directory_that_cannot_be_written_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "in.csv", [record(0)])
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes anywhere it has mode bits for; sysfs refuses new files even to root
        if not Path("/sys/kernel").is_dir():
            pytest.skip("running as root without /sys: no directory refuses root")
        locked = Path("/sys")
    result = merge(str(source), "-o", str(locked / "out.csv"), cwd=tmp_path)
    assert result.returncode == 1
    assert "Permission denied" in result.stderr
    assert "Traceback" not in result.stderr


SAME_ROWS_WORKER = textwrap.dedent(
    """
    import datetime, sys
    import tokenlog

    path, rows = sys.argv[1], int(sys.argv[2])
    when = datetime.datetime(2026, 6, 1, 9, 0, 0, 123456, tzinfo=datetime.timezone.utc)
    sink = tokenlog.CsvSink(path)
    for _ in range(rows):  # the same call, in the same microsecond, as another process writes it
        sink.write(tokenlog.UsageRecord(when, "mistral-small-latest", 10, 5, 15))
    """
)


def write_identical_rows_from_two_processes(path: Path, rows: int) -> None:
    processes = [subprocess.Popen([sys.executable, "-c", SAME_ROWS_WORKER, str(path), str(rows)]) for _ in range(2)]
    for process in processes:
        assert process.wait(timeout=120) == 0


def test_identical_rows_two_processes_wrote_into_one_file_are_each_a_call(tmp_path: Path) -> None:
    log = tmp_path / "usage.csv"
    write_identical_rows_from_two_processes(log, 200)
    other = write_csv(tmp_path / "other.csv", [record(5)])
    assert len(read_rows(log)) == 400
    result = merge(str(log), str(other), "-o", "out.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(read_rows(tmp_path / "out.csv")) == 401  # none of the 401 calls dropped


def test_a_copied_log_or_an_input_given_twice_adds_nothing(tmp_path: Path) -> None:
    log = tmp_path / "usage.csv"
    write_identical_rows_from_two_processes(log, 50)
    write_csv(log, [record(1), record(2)])
    copy = tmp_path / "copy.csv"
    shutil.copy(log, copy)
    result = merge(str(log), str(copy), str(log), "-o", "out.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert Counter(map(tuple, map(dict.items, read_rows(tmp_path / "out.csv")))) == Counter(
        map(tuple, map(dict.items, read_rows(log)))
    )


def test_rows_without_an_id_merge_as_the_input_that_holds_each_most_often(tmp_path: Path) -> None:
    first = write_csv(tmp_path / "a.csv", [record(0), record(0), record(1)])
    second = write_csv(tmp_path / "b.csv", [record(0), record(1), record(1), record(1), record(2)])
    result = merge(str(first), str(second), "-o", "out.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seconds = [row["TimestampUTC"][17:19] for row in read_rows(tmp_path / "out.csv")]
    assert seconds == ["00", "00", "01", "01", "01", "02"]


def test_rows_with_a_request_id_are_duplicates_across_inputs_when_the_id_repeats(tmp_path: Path) -> None:
    extra = ("LatencyMs", "RequestId")
    first = write_csv(
        tmp_path / "a.csv", [record(0, request_id="r1", latency_ms=1.0), record(0, request_id="r2")], extra
    )
    second = write_csv(tmp_path / "b.csv", [record(0, request_id="r1", latency_ms=2.0)], extra)  # another sink's copy
    result = merge(str(first), str(second), "-o", "out.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [row["RequestId"] for row in read_rows(tmp_path / "out.csv")] == ["r1", "r2"]
