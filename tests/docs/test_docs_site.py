"""The documentation site stays true to the code: examples that parse, a complete API reference, the real CLI help.

The guides' examples are run by tests/docs/test_docs_examples.py; ``mkdocs build --strict`` (in .ci/run) fails on a
broken link, a missing anchor, a page left out of the nav or an API reference that does not resolve.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import tokenlog
from tests.docs.docs_snippets import DOCS, blocks

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = DOCS.parent
PAGES = sorted(str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md") if "_hooks" not in path.parts)
NOTEBOOKS = {"how-to/notebooks.md"}

PUBLIC_MODULES = [
    "tokenlog",
    "tokenlog.sinks",
    "tokenlog.instrumentation",
    "tokenlog.pricing",
    "tokenlog.testing",
    "tokenlog.testing.server",
]
"""The modules whose ``__all__`` is the public API; the reference documents every name in them."""

GENERATED = {"docs/benchmarks.md"}
"""Pages written by a command (``python -m benchmarks.run``) that a fresh checkout may not have yet."""


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks_pages", DOCS / "_hooks" / "pages.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- examples on every page ---------------------------------------------------------------------------------------


def _pages_with(*langs: str) -> list[str]:
    """The pages that hold a block in one of ``langs``: a page without one has nothing to check."""
    return [page for page in PAGES if any(block.lang in langs for block in blocks(page))]


@pytest.mark.parametrize("page", _pages_with("python", "py"))
def test_every_python_block_compiles(page: str) -> None:
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if page in NOTEBOOKS else 0
    for block in blocks(page):
        if block.lang in {"python", "py"}:
            try:
                compile(block.code, block.where, "exec", flags=flags | ast.PyCF_ONLY_AST)
            except SyntaxError as exc:
                pytest.fail(f"{block.where}: {exc}")


@pytest.mark.parametrize("page", _pages_with("toml", "json"))
def test_toml_and_json_examples_parse(page: str) -> None:
    for block in blocks(page):
        if block.lang == "toml":
            tomllib.loads(block.code)
        elif block.lang == "json":
            for line in block.code.splitlines():  # one document, or JSON lines
                if line.strip():
                    json.loads(line)


def test_own_price_file_example_loads() -> None:
    """The price file that pricing.md tells readers to write is one that load_prices accepts."""
    from tokenlog.pricing import load_prices

    examples = [block for block in blocks("pricing.md") if block.lang == "toml" and "team-finetune" in block.code]
    assert len(examples) == 1
    path = Path("my-prices.toml")
    path.write_text(examples[0].code, encoding="utf-8")
    prices = load_prices([path], environ=False)
    assert prices.lookup("ft:mistral-small:acme:1234") is not None
    assert prices.cost("mistral-large-latest", 1_000_000, 0) == pytest.approx(0.45)


def test_every_page_has_a_title() -> None:
    for page in PAGES:
        first = (DOCS / page).read_text(encoding="utf-8").lstrip().splitlines()[0]
        assert first.startswith("# "), f"docs/{page} starts with {first!r}, expected a '# Title'"


# -- the API reference --------------------------------------------------------------------------------------------


def _resolve(path: str) -> Any:
    """The object a mkdocstrings identifier names (``tokenlog.sinks.csv.EXTRA_COLUMNS``)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def _api_directives() -> list[str]:
    return re.findall(r"^::: ([\w.]+)\s*$", (DOCS / "reference" / "api.md").read_text(encoding="utf-8"), re.M)


def test_api_reference_names_only_objects_that_exist() -> None:
    directives = _api_directives()
    assert len(directives) == len(set(directives))
    for path in directives:
        _resolve(path)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_api_reference_documents_every_public_name(module_name: str) -> None:
    documented: dict[str, list[Any]] = {}
    for path in _api_directives():
        documented.setdefault(path.rsplit(".", 1)[-1], []).append(_resolve(path))
    module = importlib.import_module(module_name)
    missing = [
        f"{module_name}.{name}"
        for name in module.__all__
        if not any(obj is getattr(module, name) for obj in documented.get(name, []))
    ]
    assert not missing, f"add to docs/reference/api.md: {', '.join('::: ' + name for name in missing)}"


def test_docstring_roles_become_links_and_examples_become_code() -> None:
    griffe = pytest.importorskip("griffe", reason="the docs extra is not installed: pip install -e '.[docs]'")
    spec = importlib.util.spec_from_file_location("docs_hooks_griffe", DOCS / "_hooks" / "griffe_docstrings.py")
    assert spec is not None
    assert spec.loader is not None
    extension = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extension)
    package = griffe.load(
        "tokenlog", search_paths=[str(ROOT)], extensions=griffe.load_extensions(extension.MarkdownDocstrings)
    )
    text = package["usage_session"].docstring.value
    assert ":func:" not in text
    assert ":meth:" not in text
    assert '<autoref identifier="tokenlog.sinks.resolve_sink" optional><code>resolve_sink</code></autoref>' in text
    assert '<autoref identifier="tokenlog.session.UsageSession.bind" optional><code>bind</code></autoref>' in text
    assert "```pycon\n>>> import tokenlog\n" in text
    server = package["testing.server"].docstring.value
    assert "# doctest:" not in server


# -- the command-line reference -----------------------------------------------------------------------------------


def test_cli_reference_is_what_each_command_prints_for_help() -> None:
    hooks = _hooks()
    parsers = hooks.cli_parsers()
    assert parsers[0][0] == "tokenlog"
    assert len(parsers) > 1
    page = hooks.cli_reference()
    env = {**os.environ, "COLUMNS": str(hooks.HELP_WIDTH + 2)}
    for name, parser in parsers:
        printed = subprocess.run(
            [sys.executable, "-m", "tokenlog", *name.split()[1:], "--help"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        assert printed == hooks.help_text(parser)
        assert f"$ {name} --help\n{printed.rstrip()}\n```" in page


def test_cli_reference_page_has_the_marker_the_hook_fills() -> None:
    hooks = _hooks()
    text = (DOCS / "reference" / "cli.md").read_text(encoding="utf-8")
    assert text.count(hooks.CLI_MARKER) == 1
    filled = hooks.on_page_markdown(text, page=None)
    for name, _ in hooks.cli_parsers():
        assert f"## `{name}`" in filled


def test_every_command_is_described_in_the_command_line_guide() -> None:
    guide = (DOCS / "cli.md").read_text(encoding="utf-8")
    for name, _ in _hooks().cli_parsers()[1:]:
        assert f"`{name}" in guide, f"docs/cli.md does not describe `{name}`"


@pytest.mark.parametrize(
    ("page", "line"), [("README.md", "[The command line]"), ("docs/index.md", "[The command line]")]
)
def test_the_first_pages_list_every_command(page: str, line: str) -> None:
    (listed,) = [
        text for text in (ROOT / page).read_text(encoding="utf-8").splitlines() if text.startswith(f"- {line}")
    ]
    commands = [name.split()[-1] for name, _ in _hooks().cli_parsers()[1:]]  # "tokenlog report" -> "report"
    missing = [name for name in commands if f"`{name}`" not in listed and f"`tokenlog {name}`" not in listed]
    assert not missing, f"{page}'s command list leaves out {missing}"


# -- environment variables, README -------------------------------------------------------------------------------


def test_every_environment_variable_tokenlog_reads_is_documented() -> None:
    source = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "tokenlog").rglob("*.py"))
    names = set(re.findall(r"\bTOKENLOG_[A-Z_]+\b", source))
    assert {"TOKENLOG_FILE", "TOKENLOG_DISABLE", "TOKENLOG_ON_ERROR", "TOKENLOG_PRICES"} <= names
    page = (DOCS / "reference" / "environment.md").read_text(encoding="utf-8")
    assert not [name for name in sorted(names) if f"`{name}`" not in page]


def test_readme_links_to_pages_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme)
    assert links
    for link in links:
        assert (ROOT / link).exists() or link in GENERATED, f"README.md links to {link}, which does not exist"
    assert "mkdocs" in readme, "README.md should say how to build the documentation"


def test_version_in_the_changelog() -> None:
    assert f"## {tokenlog.__version__}" in (DOCS / "changelog.md").read_text(encoding="utf-8")
