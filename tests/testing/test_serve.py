"""`tokenlog serve` and `python -m tokenlog.testing.server` run the local server on their own, in a real process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from mistralai.client import Mistral

from tokenlog.testing.server import count_tokens, reply_text

QUESTION = "what is a token in one short sentence"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def first_line(process: subprocess.Popen[str], timeout: float = 30) -> str:
    """The first line the process prints, or a failure if none comes within ``timeout`` seconds."""
    assert process.stdout is not None
    lines: list[str] = []
    stdout = process.stdout
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines, f"no URL line within {timeout} s"
    assert lines[0], "the process ended without printing its URL"
    return lines[0].rstrip("\n")


SERVE_COMMANDS = [["-m", "tokenlog", "serve"], ["-m", "tokenlog.testing.server"]]


@pytest.fixture(params=SERVE_COMMANDS, ids=["tokenlog-serve", "module"])
def command(request: pytest.FixtureRequest) -> list[str]:
    return list(request.param)


def start(command: Sequence[str], *args: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLOG_")}
    return subprocess.Popen(
        [sys.executable, *command, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def running(command: list[str], tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int, str]]:
    port = free_port()
    process = start(command, "--port", str(port), cwd=tmp_path)
    try:
        yield process, port, first_line(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_serve_prints_its_url_answers_real_sdk_calls_and_stops_cleanly_on_ctrl_c(
    running: tuple[subprocess.Popen[str], int, str],
) -> None:
    process, port, line = running
    url = f"http://127.0.0.1:{port}"
    assert line.endswith(url)

    with Mistral(api_key="offline", server_url=url) as client:
        answer = client.chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": QUESTION}])
    assert answer.choices[0].message.content == reply_text(QUESTION)
    assert answer.usage.prompt_tokens == count_tokens(QUESTION)

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = {"model": "mistral-embed", "input": ["one two", "three"]}
    connection.request("POST", "/v1/embeddings", json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    assert json.loads(response.read())["usage"] == {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}
    connection.close()

    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert err == ""
    assert "stopped after 2 requests" in out


def test_serve_on_a_busy_port_says_so_in_one_line_and_exits_2(command: list[str], tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = start(command, "--port", str(port), cwd=tmp_path)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err
