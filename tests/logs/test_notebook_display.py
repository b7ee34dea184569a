"""A session and a report show as HTML tables in Jupyter (``_repr_html_``), valid HTML, in a real kernel run by
nbclient; their plain ``repr`` stays as it was."""

from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import pytest

import tokenlog
from tokenlog.logs.report import build_report

VOID = {"br", "hr", "img", "meta", "input", "link"}


class _Balanced(HTMLParser):
    """Fails on a tag closed that was not open, or left open."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.cells: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open, f"</{tag}> closes nothing"
        assert self.open[-1] == tag, f"</{tag}> closes <{self.open[-1]}>"
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1] in ("td", "th"):
            self.cells.append(data)


def _cells(markup: str) -> list[str]:
    parser = _Balanced()
    parser.feed(markup)
    parser.close()
    assert parser.open == [], f"left open: {parser.open}"
    return parser.cells


def test_a_session_and_a_report_display_as_tables_and_keep_their_repr(tmp_path: Path) -> None:
    budget = tokenlog.Budget(max_calls=10, name="nb")
    with tokenlog.usage_session("cell <1>", sinks=[tmp_path / "u.csv"], budget=budget) as session:
        session.record({"model": "mistral-small-latest", "usage": {"prompt_tokens": 9, "completion_tokens": 4}})
        session.record({"model": "my-finetune", "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    markup = session._repr_html_()
    cells = _cells(markup)
    assert cells[:6] == ["model", "calls", "prompt", "completion", "total tokens", "estimated cost"]
    assert cells[12:18] == ["my-finetune", "1", "1", "1", "2", "unknown"]
    assert cells[-6:] == ["total", "2", "10", "5", "15", "unknown"]  # one model has no price: unknown, never 0
    assert "&#x27;cell &lt;1&gt;&#x27;" in markup
    assert "nb: 20% used" in markup
    assert repr(session) == "<UsageSession 'cell <1>': 2 calls, 15 tokens>"
    report = build_report([tmp_path / "u.csv"])
    report_cells = _cells(report._repr_html_())
    assert report_cells[0] == "model"
    assert "mistral-small-latest" in report_cells
    assert "my-finetune" in report_cells
    assert repr(report).startswith("Report(")


def test_a_real_jupyter_kernel_shows_the_tables(tmp_path: Path) -> None:
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError:
        if os.environ.get("TOKENLOG_CI"):
            pytest.fail("CI must run the notebook test: pip install -e '.[test]' installs nbclient and ipykernel")
        pytest.skip("nbclient is not installed (pip install -e '.[test]')")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import tokenlog\n"
            "with tokenlog.usage_session('nb', sinks=['u.csv']) as s:\n"
            "    usage = {'prompt_tokens': 1000, 'completion_tokens': 1}\n"
            "    s.record({'model': 'mistral-large-latest', 'usage': usage})\n"
            "s"
        ),
        nbformat.v4.new_code_cell("from tokenlog.logs.report import build_report\nbuild_report(['u.csv'])"),
    ]
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    shown = [cell.outputs[-1]["data"] for cell in notebook.cells]
    for data in shown:
        assert "text/html" in data
        assert "text/plain" in data
        _cells(data["text/html"])
    assert "1,000" in _cells(shown[0]["text/html"])
    assert "$0.0005" in shown[0]["text/html"]
    assert shown[0]["text/plain"] == "<UsageSession 'nb': 1 calls, 1001 tokens>"
    assert "mistral-large-latest" in _cells(shown[1]["text/html"])
