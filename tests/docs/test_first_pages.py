"""README.md and the docs' home page pass the 30-second test: the install line, the guide's function with the
decorator, the row it writes, and ``tokenlog validate`` before submitting.

The function they show is not run here (it needs mistralai 0.x): it must be, line for line, the script that
.ci/run's mistralai 0.4.2 step runs against the local server (tests/recording/guide_method1.py), except the
``endpoint=`` that points the script at that server. The row they show must be one that ``validate`` accepts.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.docs_snippets import DOCS

ROOT = DOCS.parent
SCRIPT = ROOT / "tests" / "recording" / "guide_method1.py"
PAGES = ["README.md", "docs/index.md"]
FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)


def thirty_seconds(page: str) -> list[tuple[str, str]]:
    """The fenced blocks (language, text) of the page's "In 30 seconds" section."""
    text = (ROOT / page).read_text(encoding="utf-8")
    section = text.split("## In 30 seconds", 1)[1].split("\n## ", 1)[0]
    return [(m["lang"], m["body"]) for m in FENCE.finditer(section)]


def code_lines(text: str) -> list[str]:
    """The lines that do something: no comments, no blank lines."""
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("page", PAGES)
def test_the_page_starts_with_install_function_row_and_validate_in_that_order(page: str) -> None:
    blocks = thirty_seconds(page)
    assert [lang for lang, _ in blocks] == ["bash", "python", "", "bash"], f"{page}: {blocks}"
    install, function, row, validate = (body for _, body in blocks)
    assert install.startswith("pip install tokenlog-usage")
    assert "@tokenlog.track_usage\ndef call_mistral_and_log(prompt):" in function
    assert row.splitlines()[0] == "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens"
    assert validate.startswith("tokenlog validate mistral_usage_log.csv")


@pytest.mark.parametrize("page", PAGES)
def test_the_function_shown_is_the_script_ci_runs_under_mistralai_0x(page: str) -> None:
    shown = code_lines(thirty_seconds(page)[1][1])
    script = [
        line.replace(', endpoint=os.environ.get("MISTRAL_SERVER_URL", "https://api.mistral.ai")', "")
        for line in code_lines(SCRIPT.read_text(encoding="utf-8"))
    ]
    assert shown == script, f"{page} shows another function than {SCRIPT.relative_to(ROOT)}, which CI runs"


@pytest.mark.parametrize("page", PAGES)
def test_the_row_shown_is_one_validate_accepts(page: str, tmp_path: Path) -> None:
    log = tmp_path / "mistral_usage_log.csv"
    log.write_text(thirty_seconds(page)[2][1], encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "tokenlog", "validate", str(log)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"OK: {log} is in the mandatory format (1 row)")
