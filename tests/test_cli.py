"""The ``tokenlog`` command through its real entry points, in subprocesses."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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


def test_demo_writes_a_valid_log_offline_and_reports_it(tmp_path: Path) -> None:
    result = run("demo", "--processes", "2", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = read_rows(tmp_path / "mistral_usage_log.csv")
    # 3 chat + 3 async chat + 1 FIM + 1 embeddings in the main process, 2 workers x 4 calls.
    assert len(rows) == 8 + 2 * 4
    assert tuple(rows[0]) == MANDATORY_COLUMNS
    assert {row["Model"] for row in rows} == {
        "mistral-small-latest",
        "mistral-large-latest",
        "codestral-latest",
        "mistral-embed",
    }
    assert all(int(r["TotalTokens"]) == int(r["PromptTokens"]) + int(r["CompletionTokens"]) for r in rows)
    total = sum(int(row["TotalTokens"]) for row in rows)
    assert f"16 rows, {total} total tokens" in result.stdout
    assert "Recorded 8 calls in this process" in result.stdout


def test_demo_honours_tokenlog_file_and_appends(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "usage.csv"
    log.parent.mkdir()
    for _ in range(2):
        result = run("demo", "--processes", "0", cwd=tmp_path, env={"TOKENLOG_FILE": str(log)})
        assert result.returncode == 0, result.stderr
    assert len(read_rows(log)) == 16
    assert log.read_text().count("TimestampUTC") == 1
    assert not (tmp_path / "mistral_usage_log.csv").exists()
