"""The ``tokenlog`` command through its real entry points, in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import read_rows
from tests.helpers import run_tokenlog as run
from tokenlog import __version__
from tokenlog.sinks.csv import MANDATORY_COLUMNS


def test_version_through_python_dash_m(tmp_path: Path) -> None:
    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"tokenlog {__version__}"


def test_the_console_script_is_installed() -> None:
    script = shutil.which("tokenlog", path=str(Path(sys.executable).parent))
    assert script is not None
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0
    assert "demo" in result.stdout


def test_no_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run(cwd=tmp_path)
    assert result.returncode == 2
    assert "COMMAND" in result.stderr


def test_demo_writes_a_valid_log_offline_and_prints_its_report(tmp_path: Path) -> None:
    result = run("demo", "--processes", "2", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert not (tmp_path / "mistral_usage_log.csv").exists()
    rows = read_rows(tmp_path / "tokenlog-demo.csv")
    # 3 chat + 3 async chat + 1 stream + 1 FIM + 1 embeddings + 1 undecorated chat here, 2 workers x 4 calls.
    assert len(rows) == 10 + 2 * 4
    assert tuple(rows[0]) == MANDATORY_COLUMNS
    models = {row["Model"] for row in rows}
    assert models == {"mistral-small-latest", "mistral-large-latest", "codestral-latest", "mistral-embed"}
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tokenlog demo: 10 calls in this process (")
    assert lines[0].endswith("and 2 worker processes, all appended to tokenlog-demo.csv, which now holds 18 rows.")
    assert lines[2].split()[:2] == ["model", "calls"]  # the report, by model, with the estimated cost
    table = {line.split()[0]: line.split() for line in lines[4:8]}
    assert set(table) == models
    assert table["mistral-small-latest"][1] == str(3 + 1 + 2 * 4)
    assert table["mistral-large-latest"][1] == str(3 + 1)
    assert all(cells[-1] != "unknown" for cells in table.values())
    total = sum(int(row["TotalTokens"]) for row in rows)
    assert next(line for line in lines if line.startswith("total ")).split()[4] == str(total)
    assert "18 calls in tokenlog-demo.csv" in result.stdout
    assert lines[-1] == (
        "The demo's log is tokenlog-demo.csv, apart from yours (mistral_usage_log.csv, $TOKENLOG_FILE): "
        "read it with `tokenlog report tokenlog-demo.csv`; --log FILE writes elsewhere."
    )
    assert run("validate", "tokenlog-demo.csv", cwd=tmp_path).returncode == 0


def test_demo_runs_in_a_fresh_environment_with_nothing_but_127_0_0_1(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # A bare environment; any request that is not for 127.0.0.1 would go to a proxy that does not exist.
    nowhere = "http://127.0.0.1:9"
    fresh = {"PATH": os.defpath, "HOME": str(home), "NO_PROXY": "127.0.0.1"}
    fresh |= {"ALL_PROXY": nowhere, "HTTPS_PROXY": nowhere, "HTTP_PROXY": nowhere}
    result = run("demo", cwd=tmp_path, env=fresh, inherit=False)
    assert result.returncode == 0, result.stderr
    assert len(read_rows(tmp_path / "tokenlog-demo.csv")) == 10 + 3 * 4


def test_demo_live_without_an_api_key_is_a_usage_error(tmp_path: Path) -> None:
    result = run("demo", "--live", cwd=tmp_path, env={"MISTRAL_API_KEY": ""})
    assert result.returncode == 2
    assert "--live makes real calls to api.mistral.ai and needs MISTRAL_API_KEY" in result.stderr
    assert not (tmp_path / "mistral_usage_log.csv").exists()


def test_demo_refuses_a_negative_number_of_processes(tmp_path: Path) -> None:
    result = run("demo", "--processes", "-1", cwd=tmp_path)
    assert result.returncode == 2
    assert "--processes must be >= 0" in result.stderr


def test_demo_never_writes_the_users_log_nor_tokenlog_file_and_appends_to_its_own(tmp_path: Path) -> None:
    users = tmp_path / "mistral_usage_log.csv"
    users.write_text(",".join(MANDATORY_COLUMNS) + "\n2026-06-01T10:00:00.000000+00:00,team-model,1,2,3\n")
    before = users.read_bytes()
    team = tmp_path / "team.csv"
    for _ in range(2):
        result = run("demo", "--processes", "0", cwd=tmp_path, env={"TOKENLOG_FILE": str(team)})
        assert result.returncode == 0, result.stderr
    assert users.read_bytes() == before
    assert not team.exists()
    demo_log = tmp_path / "tokenlog-demo.csv"
    assert len(read_rows(demo_log)) == 20
    assert demo_log.read_text().count("TimestampUTC") == 1


def test_demo_log_option_chooses_its_file(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "usage.csv"
    log.parent.mkdir()
    result = run("demo", "--processes", "1", "--log", str(log), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert len(read_rows(log)) == 10 + 4
    assert not (tmp_path / "tokenlog-demo.csv").exists()
    assert not (tmp_path / "mistral_usage_log.csv").exists()
    assert "and 1 worker process, all appended to " in result.stdout
    assert result.stdout.splitlines()[-1].startswith(f"The demo's log is {log}, apart from yours")


BATCH = Path(__file__).parents[1] / "data" / "usage_samples" / "mistral_batch_output_line.jsonl"


def test_import_batch_appends_one_batch_row_per_call_once_and_reports_price_them_at_the_batch_rate(
    tmp_path: Path,
) -> None:
    output = tmp_path / "results.jsonl"
    failed = '{"id": "b-3", "custom_id": "2", "response": {"status_code": 429, "body": {}}, "error": {"message": "x"}}'
    output.write_text(BATCH.read_text(encoding="utf-8") + failed + "\nnot json\n", encoding="utf-8")
    first = run("import-batch", str(output), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    assert f"{output}:3: skipped: the call failed (status 429" in first.stdout
    assert f"{output}:4: skipped: not JSON" in first.stdout
    assert first.stdout.endswith(
        f"imported 2 calls of {output} into mistral_usage_log.csv as batch calls; 2 lines skipped\n"
    )
    rows = read_rows(tmp_path / "mistral_usage_log.csv")
    assert [
        (r["TimestampUTC"], r["PromptTokens"], r["CompletionTokens"], r["ServiceTier"], r["Tags"]) for r in rows
    ] == [
        ("2025-10-27T15:09:43.000000+00:00", "10", "7", "batch", '{"custom_id":"0"}'),
        ("2025-10-27T15:09:43.000000+00:00", "10", "28", "batch", '{"custom_id":"1"}'),
    ]
    again = run("import-batch", str(output), cwd=tmp_path)  # the same file again adds nothing
    assert "imported 0 calls" in again.stdout
    assert len(read_rows(tmp_path / "mistral_usage_log.csv")) == 2
    assert run("validate", "mistral_usage_log.csv", cwd=tmp_path).returncode == 0
    report = json.loads(run("report", "--format", "json", cwd=tmp_path).stdout)
    assert report["total"]["cost_usd"] == pytest.approx((20 * 0.1 + 35 * 0.1) / 1e6 * 0.5)  # ministral-3b, half


def test_import_batch_of_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run("import-batch", "nothing.jsonl", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "tokenlog import-batch: nothing.jsonl: cannot be read: No such file or directory\n"
