"""``tokenlog report`` through its real entry points, on logs the tests write with the real sinks' formats."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import read_rows, run_tokenlog, write_jsonl, write_sqlite
from tokenlog import CsvSink, UsageRecord
from tokenlog.pricing import builtin_prices
from tokenlog.sinks.csv import EXTRA_COLUMNS

START = datetime(2026, 6, 1, 22, 30, tzinfo=timezone.utc)


def records() -> list[UsageRecord]:
    """Eight calls over two days, three models (one without a price), two sessions."""
    plan = [
        ("mistral-small-latest", 100, 20, "eval", "app.ask"),
        ("mistral-small-latest", 50, 10, "eval", "app.ask"),
        ("mistral-large-latest", 1000, 300, "eval", "app.plan"),
        ("mistral-small-latest", 10, 5, None, "app.ask"),
        ("mistral-large-2411", 200, 100, "nightly", "app.plan"),
        ("team-finetune", 7, 3, "nightly", "app.custom"),
        ("mistral-embed", 40, 0, "nightly", "app.embed"),
        ("mistral-small-latest", 1, 1, "nightly", "app.ask"),
    ]
    return [
        UsageRecord(
            START + timedelta(hours=i),
            model,
            prompt,
            completion,
            prompt + completion,
            session=session,
            function=function,
            latency_ms=12.5,
            request_id=f"req-{i}",
            tags={"team": "a", "run": str(i)},
        )
        for i, (model, prompt, completion, session, function) in enumerate(plan)
    ]


def write_csv(path: Path, rows: list[UsageRecord], *, extra: tuple[str, ...] = EXTRA_COLUMNS) -> Path:
    sink = CsvSink(path, extra_fields=extra)
    sink.write_many(rows)
    sink.close()
    return path


def report_json(*args: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run_tokenlog("report", "--format", "json", *args, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def groups(document: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = document["groups"]
    return found


def test_the_default_log_is_reported_as_an_aligned_table_by_model(tmp_path: Path) -> None:
    write_csv(tmp_path / "mistral_usage_log.csv", records(), extra=())
    result = run_tokenlog("report", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["model", "calls", "prompt", "completion", "total", "tokens", "cost", "(USD)"]
    small = next(line for line in lines if line.startswith("mistral-small-latest "))
    assert small.split()[:5] == ["mistral-small-latest", "4", "161", "36", "197"]
    assert next(line for line in lines if line.startswith("team-finetune ")).endswith("unknown")
    assert next(line for line in lines if line.startswith("total ")).split()[1:5] == ["8", "1,408", "439", "1,847"]
    assert len({len(line) for line in lines[:8] if not line.startswith("-")}) == 1  # every row equally wide
    assert "8 calls in mistral_usage_log.csv, from 2026-06-01 22:30:00 to 2026-06-02 05:30:00 UTC." in lines
    assert "Cost unknown for team-finetune (1 call): add a price with --prices FILE." in lines
    assert "\x1b[" not in result.stdout  # piped: plain text


def test_totals_and_costs_match_the_rows_and_the_price_table(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "usage.csv", records())
    document = report_json(str(path), cwd=tmp_path)

    rows = read_rows(path)
    by_model = {group["model"]: group for group in groups(document)}
    for model in {row["Model"] for row in rows}:
        mine = [row for row in rows if row["Model"] == model]
        group = by_model[model]
        assert group["calls"] == len(mine)
        assert group["prompt_tokens"] == sum(int(row["PromptTokens"]) for row in mine)
        assert group["completion_tokens"] == sum(int(row["CompletionTokens"]) for row in mine)
        assert group["total_tokens"] == sum(int(row["TotalTokens"]) for row in mine)
        cost = builtin_prices().cost(model, group["prompt_tokens"], group["completion_tokens"])
        assert group["cost_usd"] == (None if cost is None else pytest.approx(cost))
    assert by_model["team-finetune"]["cost_usd"] is None  # unknown, never 0
    total = document["total"]
    assert total["calls"] == 8
    assert total["cost_usd"] is None
    assert total["unpriced_calls"] == 1
    assert total["priced_cost_usd"] == pytest.approx(sum(g["cost_usd"] or 0 for g in by_model.values()))


def test_groups_combine_and_follow_the_order_given(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "usage.csv", records())
    document = report_json(str(path), "--by", "day,session", cwd=tmp_path)
    assert document["group_by"] == ["day", "session"]
    assert [(g["day"], g["session"], g["calls"]) for g in groups(document)] == [
        ("2026-06-01", "eval", 2),
        ("2026-06-02", "", 1),
        ("2026-06-02", "eval", 1),
        ("2026-06-02", "nightly", 4),
    ]
    by_function = report_json(str(path), "--by", "function", "--by", "hour", cwd=tmp_path)
    assert [(g["function"], g["hour"]) for g in groups(by_function)][:2] == [
        ("app.ask", "2026-06-01 22:00"),
        ("app.ask", "2026-06-01 23:00"),
    ]


def test_since_until_and_model_filter_the_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "usage.csv", records())
    second_day = report_json(str(path), "--since", "2026-06-02", "--until", "2026-06-02", cwd=tmp_path)
    assert second_day["total"]["calls"] == 6
    window = report_json(str(path), "--since", "2026-06-02T01:00+02:00", "--until", "2026-06-02T01:00Z", cwd=tmp_path)
    assert [(g["model"], g["calls"]) for g in groups(window)] == [  # the calls at 23:30 and 00:30 UTC
        ("mistral-large-latest", 1),
        ("mistral-small-latest", 1),
    ]
    small = report_json(str(path), "--model", "mistral-small*", "--model", "mistral-embed", cwd=tmp_path)
    assert [g["model"] for g in groups(small)] == ["mistral-embed", "mistral-small-latest"]


def test_timestamps_with_another_offset_or_z_are_read_as_utc(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text(
        "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\n"
        "2026-06-02T01:30:00+02:00,mistral-small-latest,1,1,2\n"
        "2026-06-01T23:45:00Z,mistral-small-latest,1,1,2\n"
    )
    document = report_json(str(path), "--by", "day", cwd=tmp_path)
    assert [(g["day"], g["calls"]) for g in groups(document)] == [("2026-06-01", 2)]


def test_csv_and_markdown_formats(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "usage.csv", records())
    as_csv = run_tokenlog("report", str(path), "--format", "csv", cwd=tmp_path)
    assert as_csv.returncode == 0
    table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert list(table[0]) == ["model", "calls", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd"]
    assert {row["model"]: row["cost_usd"] for row in table}["team-finetune"] == ""
    as_markdown = run_tokenlog("report", str(path), "--format", "markdown", "--by", "session", cwd=tmp_path)
    lines = as_markdown.stdout.splitlines()
    assert lines[0] == "| session | calls | prompt | completion | total tokens | cost (USD) |"
    assert lines[1] == "| --- | --: | --: | --: | --: | --: |"
    assert lines[5].startswith("| **total** | **8** | **1,408** | **439** | **1,847** |")


def test_jsonl_and_sqlite_logs_report_the_same_totals_as_the_csv(tmp_path: Path) -> None:
    rows = records()
    as_csv = report_json(str(write_csv(tmp_path / "usage.csv", rows)), "--by", "model,session", cwd=tmp_path)
    as_jsonl = report_json(str(write_jsonl(tmp_path / "usage.jsonl", rows)), "--by", "model,session", cwd=tmp_path)
    as_sqlite = report_json(str(write_sqlite(tmp_path / "usage.db", rows)), "--by", "model,session", cwd=tmp_path)
    assert groups(as_csv) == groups(as_jsonl) == groups(as_sqlite)
    assert as_csv["total"] == as_jsonl["total"] == as_sqlite["total"]


def test_formats_are_sniffed_when_the_extension_says_nothing(tmp_path: Path) -> None:
    rows = records()
    jsonl = write_jsonl(tmp_path / "usage.log", rows)
    sqlite = write_sqlite(tmp_path / "usage.data", rows)
    document = report_json(str(jsonl), str(sqlite), cwd=tmp_path)
    assert document["total"]["calls"] == 16


def test_several_files_are_added_together(tmp_path: Path) -> None:
    rows = records()
    first = write_csv(tmp_path / "a.csv", rows[:3], extra=())
    second = write_jsonl(tmp_path / "b.jsonl", rows[3:])
    document = report_json(str(first), str(second), cwd=tmp_path)
    assert document["files"] == [str(first), str(second)]
    assert document["total"]["total_tokens"] == sum(r.total_tokens for r in rows)


def test_rows_that_are_not_usage_rows_are_skipped_and_named_on_stderr(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "usage.csv", records()[:2], extra=())
    with open(path, "a") as handle:
        handle.write("TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\n")  # `cat a.csv b.csv`
        handle.write("2026-06-03T00:00:00.000000+00:00,mistral-small-latest,abc,1,2\n")
        handle.write("2026-06-03T00:00:00,mistral-small-latest,1,1,2\n")
        handle.write("2026-06-03T00:00:00.000000+00:00,mistral-small-latest,1,1,2\n")
        handle.write("2026-06-03T00:00:00.0")  # a writer killed mid-line
    result = run_tokenlog("report", str(path), "--format", "json", cwd=tmp_path)

    assert result.returncode == 0
    assert json.loads(result.stdout)["total"]["calls"] == 3
    assert json.loads(result.stdout)["skipped_rows"] == 3
    assert "skipped 3 rows" in result.stderr
    assert f"{path}:5: PromptTokens is 'abc', expected a non-negative integer" in result.stderr
    assert f"{path}:6: TimestampUTC is '2026-06-03T00:00:00', expected an ISO 8601 time with a UTC offset" in (
        result.stderr
    )
    assert f"{path}:8: has 1 fields, expected 5" in result.stderr


def test_price_overrides_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "usage.csv", records())
    prices = tmp_path / "prices.toml"
    prices.write_text("[models.team-finetune]\ninput = 1000000\noutput = 1000000\n")
    document = report_json(str(path), "--prices", str(prices), "--model", "team-*", cwd=tmp_path)
    assert groups(document)[0]["cost_usd"] == 10.0  # 7 + 3 tokens at $1 each
    assert document["prices"]["overrides"] == [str(prices)]
    from_env = report_json(str(path), "--model", "team-*", cwd=tmp_path, env={"TOKENLOG_PRICES": str(prices)})
    assert groups(from_env)[0]["cost_usd"] == 10.0


def test_an_empty_log_or_no_matching_rows_say_so(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    path.write_text("TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\n")
    result = run_tokenlog("report", str(path), cwd=tmp_path)
    assert result.returncode == 0
    assert "No calls in " in result.stdout
    write_csv(path, records(), extra=())
    filtered = run_tokenlog("report", str(path), "--model", "nothing", cwd=tmp_path)
    assert "No calls in " in filtered.stdout
    assert "match the filters" in filtered.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv"], "tokenlog report: missing.csv: no such file"),
        ([], "mistral_usage_log.csv: no such file. Run your program to write it, or name a log: tokenlog report FILE"),
        (["--by", "week"], "--by week: expected one of model, day, hour, session, function"),
        (["--since", "yesterday"], "--since: 'yesterday' is not a date or time"),
        (["--format", "xml"], "invalid choice: 'xml'"),
        (["--prices", "nowhere.toml", "log.csv"], "nowhere.toml: no such price file"),
        (["foreign.csv"], "has no TimestampUTC, PromptTokens, CompletionTokens, TotalTokens column: not a usage log"),
        (["."], ".: is a directory"),
    ],
)
def test_usage_errors_exit_2_with_one_clear_line(tmp_path: Path, args: list[str], message: str) -> None:
    write_csv(tmp_path / "log.csv", records(), extra=())
    (tmp_path / "foreign.csv").write_text("Model,Cost\nx,1\n")
    result = run_tokenlog("report", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_tokenlog_file_names_the_default_log(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "elsewhere.csv", records(), extra=())
    document = report_json(cwd=tmp_path, env={"TOKENLOG_FILE": str(path)})
    assert document["files"] == [str(path)]


def test_the_console_script_reports_too(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "mistral_usage_log.csv", records(), extra=())
    script = shutil.which("tokenlog", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run([script, "report", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    assert result.stdout.startswith("model ")


def run_on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run ``python -m tokenlog`` with its standard output on a pseudo-terminal; return what it printed."""
    controller, terminal = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")} | env
    process = subprocess.Popen(
        [sys.executable, "-m", "tokenlog", *args], cwd=cwd, stdout=terminal, stderr=subprocess.PIPE, env=environment
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process has finished writing
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    return output.decode()


def test_on_a_terminal_the_table_is_styled_unless_no_color(tmp_path: Path) -> None:
    write_csv(tmp_path / "mistral_usage_log.csv", records(), extra=())
    styled = run_on_a_terminal(["report"], tmp_path, {"TERM": "xterm"})
    assert styled.startswith("\x1b[1mmodel")
    plain = run_on_a_terminal(["report"], tmp_path, {"TERM": "xterm", "NO_COLOR": "1"})
    assert "\x1b[" not in plain
    assert plain.startswith("model")


def test_a_broken_jsonl_line_is_skipped_and_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "usage.jsonl", records()[:2])
    with open(path, "a") as handle:
        handle.write('{"timestamp": "2026-06-03T00:00:00+00:00", "model": "m", "prompt_tok\n')
        handle.write("\n")  # blank lines are no rows in JSONL
    result = run_tokenlog("report", str(path), "--format", "json", cwd=tmp_path)
    assert result.returncode == 0
    assert json.loads(result.stdout)["total"]["calls"] == 2
    assert f"{path}:3: is not a JSON object: " in result.stderr


def test_an_sqlite_file_without_a_usage_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE things (name TEXT)")
    connection.close()
    result = run_tokenlog("report", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}: no table 'usage': not a tokenlog SQLite log" in result.stderr


def tagged_records() -> list[UsageRecord]:
    return [
        UsageRecord(START, "mistral-small-latest", 10, 1, 11, tags={"feature": "search", "team": "a"}),
        UsageRecord(START, "mistral-small-latest", 20, 1, 21, tags={"feature": "summary", "team": "a"}),
        UsageRecord(START, "mistral-small-latest", 5, 1, 6, tags={"feature": "search", "team": "b"}),
        UsageRecord(START, "mistral-small-latest", 1, 1, 2),
    ]


@pytest.mark.parametrize("name", ["usage.csv", "usage.jsonl", "usage.db"])
def test_report_groups_by_a_tags_value_and_filters_by_tags(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    {"usage.csv": write_csv, "usage.jsonl": write_jsonl, "usage.db": write_sqlite}[name](path, tagged_records())
    by_feature = groups(report_json(name, "--by", "tag:feature", cwd=tmp_path))
    assert [(g["tag:feature"], g["calls"], g["prompt_tokens"]) for g in by_feature] == [
        ("", 1, 1),  # calls without the tag
        ("search", 2, 15),
        ("summary", 1, 20),
    ]
    team_a = report_json(name, "--where", "tag:team=a", "--by", "tag:feature", cwd=tmp_path)
    assert [(g["tag:feature"], g["prompt_tokens"]) for g in groups(team_a)] == [("search", 10), ("summary", 20)]
    both = report_json(name, "--where", "tag:team=a", "--where", "tag:feature=search", cwd=tmp_path)
    assert both["total"]["prompt_tokens"] == 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--where", "team=a"], "--where 'team=a': expected tag:NAME=VALUE (tag:team=search)"),
        (["--by", "tag:"], "--by tag:: expected one of model, day, hour, session, function, tag:NAME"),
    ],
)
def test_a_malformed_tag_option_is_a_usage_error(tmp_path: Path, args: list[str], message: str) -> None:
    write_csv(tmp_path / "usage.csv", tagged_records())
    result = run_tokenlog("report", "usage.csv", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"tokenlog report: error: {message}"


def test_a_report_over_time_draws_each_rows_tokens_as_a_bar_and_markdown_does_not(tmp_path: Path) -> None:
    (tmp_path / "u.csv").write_text(
        "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\n"
        "2026-06-01T10:00:00.000000+00:00,m,100,0,100\n"
        "2026-06-02T10:00:00.000000+00:00,m,50,0,50\n"
        "2026-06-02T11:00:00.000000+00:00,m,0,0,0\n"
    )
    by_day = run_tokenlog("report", "u.csv", "--by", "day", cwd=tmp_path).stdout.splitlines()
    assert by_day[2].endswith("  " + "█" * 24)  # the largest day: the whole bar
    assert by_day[3].endswith("  " + "█" * 12)  # half of it
    by_hour = run_tokenlog("report", "u.csv", "--by", "hour", cwd=tmp_path).stdout.splitlines()
    assert by_hour[4].endswith("unknown")  # no tokens: no bar after the cost
    assert "█" not in run_tokenlog("report", "u.csv", "--by", "day", "--format", "markdown", cwd=tmp_path).stdout
    assert "█" not in run_tokenlog("report", "u.csv", cwd=tmp_path).stdout  # by model: no bars
