"""``tokenlog report --format html``: one self-contained file, its numbers those of the log, opened in a real headless
Chromium with the network cut off (nothing loaded from outside, no console error), and small for 1,000,000 rows.

The browser is Debian's ``chromium`` (``.ci/run`` installs it), driven by Playwright. Where neither can be had the
browser tests skip and say why, except in CI (``TOKENLOG_CI=1``, set by ``.ci/run``), where they fail.
The screenshot is kept at ``build/artifacts/report.png`` (a CI artifact).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tokenlog.logs.html import html_report
from tokenlog.logs.report import build_report

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "build" / "artifacts" / "report.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HEADER = "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens,Session,Function,LatencyMs,RequestId,Tags\n"


def _log(path: Path, rows: int, *, days: int = 10, broken: bool = True) -> Path:
    """A log of ``rows`` calls over ``days`` days: 10 models, 5 functions, 3 sessions, a tag, latencies."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(HEADER)
        step = days * 86_400 / max(rows, 1)
        start = 1_780_000_000  # 2026-05-28
        for i in range(rows):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i * step)) + f".{i % 1_000_000:06d}+00:00"
            model = ("mistral-small-latest", "mistral-large-latest", "codestral-latest", "mistral-embed",
                     "ministral-8b-latest", "pixtral-large-latest", "open-mistral-nemo", "my-finetune",
                     "mistral-medium-latest", "magistral-medium-latest")[i % 10]  # fmt: skip
            prompt, completion = 10 + i % 97, i % 13
            tags = f'"{{""feature"": ""f{i % 4}""}}"'
            handle.write(
                f"{stamp},{model},{prompt},{completion},{prompt + completion},run-{i % 3},app.step{i % 5},"
                f"{(i * 7919) % 5000 / 3:.1f},req-{i},{tags}\n"
            )
        if broken:
            handle.write("2026-06-01T00:00:00+00:00,mistral-small,ten,1,11,,,,,{}\n")
    return path


class _Checker(HTMLParser):
    """Collects what a page would load from elsewhere, and every element id."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "xlink:href") and value and not value.startswith(("#", "data:")):
                self.external.append(f"<{tag} {name}={value}>")
            if name == "id" and value:
                self.ids.add(value)


def test_the_page_is_self_contained_and_its_totals_are_the_logs(tmp_path: Path) -> None:
    log = _log(tmp_path / "usage.csv", 2_000)
    page = html_report([log]).text
    checker = _Checker()
    checker.feed(page)
    assert checker.external == []
    assert "<script" not in page
    assert "@import" not in page
    assert "url(" not in page
    assert {"chart-tokens", "chart-cost", "chart-model", "chart-function", "chart-session", "chart-tag-feature"} <= (
        checker.ids
    )
    assert {"table-over-time", "table-slowest", "table-priciest", "skipped-count"} <= checker.ids
    report = build_report([log])
    assert f'id="total-calls" data-value="{report.total.calls}"' in page
    assert f'id="total-total-tokens" data-value="{report.total.total_tokens}"' in page
    assert 'id="total-cost" data-value=""' in page  # my-finetune has no price: the cost is unknown, never 0
    assert "calls are of models without a price" in page
    assert 'data-value="1"' in page.split('id="skipped-count"')[1][:40]
    assert "usage.csv:2002: PromptTokens is &#x27;ten&#x27;, expected a non-negative integer" in page  # why


def test_the_command_writes_the_file_and_names_its_calls(tmp_path: Path) -> None:
    log = _log(tmp_path / "usage.csv", 50, broken=False)
    out = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "tokenlog", "report", str(log), "--format", "html", "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"Wrote {out}: 50 calls" in done.stderr
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a log of 1,000,000 calls over 60 days (made once for the tests that need it)."""
    directory = tmp_path_factory.mktemp("million")
    log = _log(directory / "big.csv", 1_000_000, days=60, broken=False)
    out = directory / "big.html"
    out.write_text(html_report([log]).text, encoding="utf-8")
    return out


def test_a_million_rows_make_a_file_under_2_mb(million: Path) -> None:
    assert million.stat().st_size < 2_000_000, million.stat().st_size


# -- in a real browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
    if executable is None:
        reason = "no chromium on PATH (Debian: apt-get install -y chromium; .ci/run does it)"
    if reason is not None:
        if os.environ.get("TOKENLOG_CI"):
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _open(browser: Any, path: Path, width: int = 1000) -> tuple[Any, list[str], list[str], float]:
    """The page, its console errors, every request it made that was not for the file itself, and its load time."""
    context = browser.new_context(viewport={"width": width, "height": 900}, offline=True)
    page = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route("**/*", lambda route: route.continue_() if route.request.url == path.as_uri() else route.abort())
    page.on("request", lambda request: outside.append(request.url) if request.url != path.as_uri() else None)
    started = time.perf_counter()
    page.goto(path.as_uri(), wait_until="load")
    return page, errors, outside, time.perf_counter() - started


def test_the_report_opens_offline_in_chromium_and_draws_the_logs_numbers(browser: Any, tmp_path: Path) -> None:
    log = tmp_path / "demo.csv"
    subprocess.run([sys.executable, "-m", "tokenlog", "demo", "--log", str(log)], check=True, capture_output=True)
    out = tmp_path / "report.html"
    subprocess.run(
        [sys.executable, "-m", "tokenlog", "report", str(log), "--format", "html", "-o", str(out)], check=True
    )
    page, errors, outside, _ = _open(browser, out)
    assert errors == []
    assert outside == []
    report = build_report([log])
    shown = json.loads(
        page.evaluate(
            """() => JSON.stringify({
                calls: document.querySelector('#total-calls').dataset.value,
                tokens: [...document.querySelectorAll('#chart-tokens rect.bar')]
                    .reduce((s, r) => s + +r.dataset.value, 0),
                byModel: Object.fromEntries([...document.querySelectorAll('#chart-model rect.bar')]
                    .map(r => [r.dataset.group, +r.dataset.value])),
                legend: [...document.querySelectorAll('#over-time .legend li')].map(li => li.textContent),
                width: document.querySelector('#chart-tokens').getBoundingClientRect().width,
            })"""
        )
    )
    assert int(shown["calls"]) == report.total.calls
    assert shown["tokens"] == report.total.total_tokens
    assert shown["byModel"] == {key[0]: totals.total_tokens for key, totals in report.groups.items()}
    assert set(report.groups) <= {(name,) for name in shown["legend"]}
    assert shown["width"] > 500
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
    page.emulate_media(media="print")  # printed: the tables behind the charts are shown, open
    assert page.evaluate("() => getComputedStyle(document.querySelector('#table-over-time')).display") == "table"
    # laid out on the printed page (a closed <details> keeps its content hidden unless the stylesheet opens it)
    page.wait_for_function("() => document.querySelector('#table-over-time').getBoundingClientRect().height > 0")
    phone, errors, _, _ = _open(browser, out, width=390)  # a phone: the charts shrink to the screen
    assert errors == []
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 400


def test_the_report_of_a_million_rows_opens_in_under_2_seconds(browser: Any, million: Path) -> None:
    page, errors, outside, seconds = _open(browser, million)
    assert errors == []
    assert outside == []
    assert seconds < 2, seconds
    assert page.evaluate("() => document.querySelectorAll('#chart-tokens rect.bar').length") > 60


def test_the_filters_select_the_same_rows_as_the_table(tmp_path: Path) -> None:
    log = _log(tmp_path / "usage.csv", 3_000, days=10)
    options = {"since": "2026-05-30T00:00:00.000000+00:00", "models": ["mistral-*"], "where": [("feature", "f1")]}
    page = html_report([log], **options).text  # type: ignore[arg-type]
    report = build_report([log], **options)  # type: ignore[arg-type]
    assert 0 < report.total.calls < 3_000
    assert f'id="total-calls" data-value="{report.total.calls}"' in page
    assert f'id="total-total-tokens" data-value="{report.total.total_tokens}"' in page
    assert "my-finetune" not in page  # filtered out by the model pattern
