"""From ``OpenTelemetrySink`` to a real Prometheus: a long-running process exposes ``gen_ai.client.token.usage``
through the OpenTelemetry Prometheus exporter, Debian's ``prometheus`` (started here on 127.0.0.1 with a scrape
config pointing at that process) scrapes it, and its HTTP API gives back the token sums by model and token type
that the process recorded.

Without the ``prometheus`` binary or the exporter the test skips and says why, except in CI (``TOKENLOG_CI=1``,
set by ``.ci/run``, which installs both), where it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tokenlog.testing.server import MistralCompatibleServer

CHILD = Path(__file__).with_name("prometheus_child.py")
QUERY = "sum by (gen_ai_request_model, gen_ai_token_type) (gen_ai_client_token_usage_sum)"


def _missing() -> str | None:
    if shutil.which("prometheus") is None:
        return "no prometheus binary (Debian: apt-get install -y prometheus; .ci/run does it)"
    try:
        import opentelemetry.exporter.prometheus  # noqa: F401
    except ImportError:
        return "opentelemetry-exporter-prometheus is not installed (pip install -e '.[test]')"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


@pytest.fixture
def exporter(server: MistralCompatibleServer, tmp_path: Path) -> Iterator[tuple[int, dict[str, dict[str, int]]]]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("TOKENLOG_CI"):
            pytest.fail(f"CI must run the Prometheus test: {reason}")
        pytest.skip(reason)
    port = _free_port()
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(port), server.url], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, f"the exporting process ended early (exit {child.poll()})"
        yield port, json.loads(line)
    finally:
        child.terminate()
        child.wait(timeout=10)


def test_prometheus_scrapes_the_token_sums_by_model_and_type(
    exporter: tuple[int, dict[str, dict[str, int]]], tmp_path: Path
) -> None:
    port, recorded = exporter
    web = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        f"scrape_configs:\n  - job_name: tokenlog\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    started = time.perf_counter()
    prometheus = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{web}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    try:
        base = f"http://127.0.0.1:{web}"
        found: dict[tuple[str, str], float] = {}
        ready_after = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                if ready_after is None:
                    with urllib.request.urlopen(base + "/-/ready", timeout=5):
                        ready_after = time.perf_counter() - started
                answer = _get(base + "/api/v1/query?" + urllib.parse.urlencode({"query": QUERY}))
            except OSError:
                continue
            results = answer["data"]["result"]  # type: ignore[index]
            found = {
                (item["metric"]["gen_ai_request_model"], item["metric"]["gen_ai_token_type"]): float(item["value"][1])
                for item in results
            }
            if len(found) == 2 * len(recorded):
                break
        log = (tmp_path / "prometheus.log").read_text()[-2000:]
        expected = {(model, kind): float(count) for model, kinds in recorded.items() for kind, count in kinds.items()}
        assert found == expected, f"Prometheus answered {found}; its log ends: {log}"
        assert ready_after is not None
        print(f"prometheus ready after {ready_after:.2f} s")  # the note's figure (pytest -s)
        targets = _get(base + "/api/v1/targets")["data"]["activeTargets"]  # type: ignore[index]
        assert [t["health"] for t in targets] == ["up"]
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=20)
