"""The hackathon guide's two scripts, each with one decorator, write one row per successful call and none for a
failed one: Method 1 (mistralai 0.x, ``MistralClient``; runs where mistralai 0.x is installed: CI installs 0.4.2
beside tokenlog, see ``.ci/run``) and Method 2 (``requests.post``; runs everywhere).

Each script (tests/recording/guide_method1.py, guide_method2.py) runs in its own Python process, as a user runs
it, against the local server; its function returns the reply's text, not the response.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import read_rows
from tests.sdk import MISTRAL_MAJOR
from tokenlog.testing.server import MistralCompatibleServer, count_tokens, reply_text

SCRIPTS = {
    "guide_method1": pytest.mark.skipif(MISTRAL_MAJOR != 0, reason="needs mistralai 0.x (CI runs it in its own venv)"),
    "guide_method2": [],
}
FAILURE = {"guide_method1": "MistralAPIException", "guide_method2": "HTTPError"}
PROMPTS = ["What is the best French cheese?", "Name three rivers in Europe.", "Explain tokens in one line."]

# The user's program: import the guide's script, call its function once per prompt, print each reply (or the
# exception's class); the CSV with a Function column is written beside the default file.
_DRIVER = """
import json, sys
import tokenlog
tokenlog.configure(sinks=["mistral_usage_log.csv", tokenlog.CsvSink("functions.csv", extra_fields=["Function"])])
sys.path.insert(0, sys.argv[1])
call_mistral_and_log = __import__(sys.argv[2]).call_mistral_and_log
for prompt in json.loads(sys.argv[3]):
    try:
        print(json.dumps(call_mistral_and_log(prompt)))
    except Exception as exc:
        print(json.dumps(type(exc).__name__))
"""


def _run_guide(server: MistralCompatibleServer, cwd: Path, script: str, prompts: list[str]) -> list[str]:
    """Run the driver in a fresh Python process in ``cwd``; each prompt's reply, or the exception's class name."""
    env = {**os.environ, "MISTRAL_API_KEY": "test-key", "MISTRAL_SERVER_URL": server.url}
    out = subprocess.check_output(
        [sys.executable, "-c", _DRIVER, str(Path(__file__).parent), script, json.dumps(prompts)],
        cwd=cwd,
        env=env,
        text=True,
        timeout=60,
    )
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize("script", [pytest.param(name, marks=marks) for name, marks in SCRIPTS.items()])
def test_the_guides_script_writes_one_row_per_successful_call(
    server: MistralCompatibleServer, tmp_path: Path, script: str
) -> None:
    server.fail_next(401)  # the first call fails (a wrong key), as the API answers it; neither client retries a 401

    replies = _run_guide(server, tmp_path, script, ["this call fails", *PROMPTS])

    assert replies == [FAILURE[script], *(reply_text(prompt) for prompt in PROMPTS)]
    expected = [("mistral-large-latest", count_tokens(p), count_tokens(reply_text(p))) for p in PROMPTS]
    log = tmp_path / "mistral_usage_log.csv"
    assert (
        log.read_text(encoding="utf-8").splitlines()[0]
        == "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens"
    )
    rows = read_rows(log)
    assert [(r["Model"], int(r["PromptTokens"]), int(r["CompletionTokens"])) for r in rows] == expected
    assert [int(r["TotalTokens"]) for r in rows] == [prompt + completion for _, prompt, completion in expected]
    assert [r["Function"] for r in read_rows(tmp_path / "functions.csv")] == [f"{script}.call_mistral_and_log"] * 3
