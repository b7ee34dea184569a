"""Every code block of the guides runs, against the local server, and prints what the page says it prints.

Each guide page (the quickstart, the migration page and docs/how-to/) runs in a fresh Python process in an
empty directory, its blocks in order, as a reader who pasted them would run them (see tests/docs/docs_snippets.py).
The examples read ``MISTRAL_API_KEY`` and ``MISTRAL_SERVER_URL`` (the openai SDK reads ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL`` itself); here they point at a ``MistralCompatibleServer`` on 127.0.0.1.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs import docs_snippets
from tests.docs.docs_snippets import DOCS, Step, blocks, output_matches, steps
from tokenlog.testing.server import MistralCompatibleServer

GUIDES = ["quickstart.md", "migration.md", *sorted(f"how-to/{p.name}" for p in (DOCS / "how-to").glob("*.md"))]
SLOW = {"how-to/multiprocessing.md"}
"""Pages that start worker processes (marked slow, as the other multi-process tests are)."""
NOTEBOOKS = {"how-to/notebooks.md"}
"""Pages whose blocks are notebook cells: top-level ``await``, and a cell's last expression is shown."""

NOT_RUN = {
    ("how-to/opentelemetry.md", "needs a collector listening on localhost:4317 and opentelemetry-exporter-otlp"),
}
"""The only python or console blocks of the guides that are not run, and why."""

ONLY = {
    ("how-to/mistralai.md", "only: mistralai>=2"),
    ("how-to/mistralai.md", "only: mistralai<2"),
}
"""Blocks that run only with one mistralai major version (the <2 ones in .ci/run's mistralai 1.x step)."""

TIMEOUT = 300


def _environment(server: MistralCompatibleServer) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TOKENLOG_", "OPENAI_"))}
    env.update(
        MISTRAL_API_KEY="test-key",
        MISTRAL_SERVER_URL=server.url,
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=server.url + "/v1",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _describe(step: Step, result: dict[str, object]) -> str:
    what = f"$ {step.text}" if step.kind == "shell" else f"the {step.kind} block"
    return f"{step.block.where}: {what}"


def run_page(page: str, server: MistralCompatibleServer, workdir: Path) -> list[tuple[Step, dict[str, object]]]:
    """Run ``page``'s steps in a fresh process in ``workdir``; fail with the block's place on the first problem."""
    page_steps, _ = steps(page)
    workdir.mkdir()
    spec = {"notebook": page in NOTEBOOKS, "steps": [step.to_json() for step in page_steps]}
    (workdir.parent / "steps.json").write_text(json.dumps(spec), encoding="utf-8")
    results_file = workdir.parent / "results.json"
    done = subprocess.run(
        [sys.executable, docs_snippets.__file__, str(workdir.parent / "steps.json"), str(results_file)],
        cwd=workdir,
        env=_environment(server),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"docs/{page}: the runner failed:\n{done.stderr}"
    results = json.loads(results_file.read_text(encoding="utf-8"))
    assert len(results) <= len(page_steps)
    for step, result in zip(page_steps, results, strict=False):  # the runner stops at the first error
        if result["error"]:
            pytest.fail(f"{_describe(step, result)} raised:\n{result['error']}", pytrace=False)
        if step.expected is not None and not output_matches(step.expected, result["output"]):
            diff = "\n".join(
                difflib.unified_diff(step.expected.splitlines(), result["output"].splitlines(), lineterm="")
            )
            pytest.fail(f"{_describe(step, result)} printed something else than the page shows:\n{diff}", pytrace=False)
        if step.kind == "shell" and result["status"] != 0 and not step.expected:
            pytest.fail(f"{_describe(step, result)} exited {result['status']}:\n{result['output']}", pytrace=False)
    assert len(results) == len(page_steps)
    return list(zip(page_steps, results, strict=True))


@pytest.mark.parametrize(
    "page", [pytest.param(page, marks=[pytest.mark.slow] if page in SLOW else []) for page in GUIDES]
)
def test_guide_examples_run_and_print_what_the_page_shows(page: str, server, tmp_path: Path) -> None:
    ran = run_page(page, server, tmp_path / "reader")
    assert ran, f"docs/{page} has no block that runs"


def test_guides_leave_out_only_the_listed_blocks() -> None:
    left_out = set()
    only = set()
    for page in GUIDES:
        for block in blocks(page):
            if block.norun_reason is not None:
                assert block.lang in {"python", "console"}, f"{block.where}: norun on a block that never runs"
                left_out.add((page, block.norun_reason))
            elif block.marker and block.marker.startswith("only:"):
                only.add((page, block.marker))
    assert left_out == NOT_RUN
    assert only == ONLY


def test_every_output_block_follows_a_block_that_runs() -> None:
    for page in GUIDES:
        page_blocks = blocks(page)
        for before, block in itertools.pairwise(page_blocks):
            if block.is_output:
                assert before.lang == "python", block.where
                assert before.norun_reason is None, block.where
                assert not before.file_name, block.where


def test_mistralai_1x_blocks_run_with_mistralai_1x() -> None:
    """The page's 1.x import path runs in .ci/run's mistralai 1.x step, which runs this file's mistralai tests."""
    if docs_snippets.installed_major("mistralai") != 1:
        pytest.skip("mistralai 1.x is not installed here; .ci/run's mistralai 1.x step runs these blocks")
    page_steps, skipped = steps("how-to/mistralai.md")
    assert any(step.block.marker == "only: mistralai<2" for step in page_steps)
    assert all(block.marker == "only: mistralai>=2" for block in skipped)
