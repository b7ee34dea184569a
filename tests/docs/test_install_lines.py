"""Every install command in README.md, CONTRIBUTING.md and docs/ installs the real distribution, or a checkout.

``tokenlog`` on the package index is another project (0.0.3, with some forty dependencies, and no
``track_usage``): ``pip install tokenlog`` installs it. The distribution is named in pyproject.toml; the import
name stays ``tokenlog``. A command counts wherever it is written: a code block, inline code or a table cell.
"""

from __future__ import annotations

import re
import shlex
import sys

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tests.docs.docs_snippets import DOCS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = DOCS.parent
DISTRIBUTION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["name"]
TAKEN = "tokenlog"
"""The name the package index gives to another project."""

FILES = sorted(
    ["README.md", "CONTRIBUTING.md", *(str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)]
)

INSTALL = re.compile(
    r"(?<![\w.-])(?:(?:%?pip3?|python3? -m pip|uv pip|pipx) install|uv add)(?P<args>(?:[ \t]+[^\s`&;|#]+)*)"
)
"""An install command and its arguments, up to the end of the inline code, the line, a comment or the next command."""
OPTIONS_WITH_A_VALUE = {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url", "-t"}


def install_commands(text: str) -> list[tuple[int, str, list[str]]]:
    """Each install command in ``text``: its line number, the command, and what it installs (paths included)."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in INSTALL.finditer(line):
            words = shlex.split(match["args"])
            targets = [w for i, w in enumerate(words) if not w.startswith("-") and _value_of_option(words, i) is None]
            found.append((number, match[0].strip(), targets))
    return found


def _value_of_option(words: list[str], index: int) -> str | None:
    """The option ``words[index]`` is the value of (``requirements.txt`` in ``-r requirements.txt``), if any."""
    if index > 0 and words[index - 1] in OPTIONS_WITH_A_VALUE:
        return words[index - 1]
    return None


def is_checkout(target: str) -> bool:
    """A path or a VCS/URL requirement: installs whatever that checkout is, whatever its name."""
    return target.startswith((".", "/", "~", "git+", "file:", "http:", "https:")) or "/" in target


def installed_name(target: str) -> str | None:
    """The canonical distribution name that ``target`` asks the index for; None for a checkout or a non-name."""
    if is_checkout(target):
        return None
    try:
        return canonicalize_name(Requirement(target).name)
    except InvalidRequirement:
        return None


def wrong_install_lines(text: str) -> list[str]:
    """The install commands in ``text`` that ask the package index for ``tokenlog``, the other project."""
    return [
        f"line {number}: {command}"
        for number, command, targets in install_commands(text)
        if any(installed_name(target) == TAKEN for target in targets)
    ]


def test_the_distribution_name_is_not_the_taken_one() -> None:
    assert canonicalize_name(DISTRIBUTION) != TAKEN
    assert DISTRIBUTION == "tokenlog-usage"


@pytest.mark.parametrize("path", FILES)
def test_no_install_command_asks_the_index_for_the_other_project(path: str) -> None:
    wrong = wrong_install_lines((ROOT / path).read_text(encoding="utf-8"))
    assert not wrong, f"{path} installs the unrelated 'tokenlog' from the package index; name {DISTRIBUTION}: {wrong}"


@pytest.mark.parametrize("path", ["README.md", "docs/index.md", "docs/quickstart.md"])
def test_the_first_pages_install_the_real_distribution_and_say_how_from_a_checkout(path: str) -> None:
    commands = install_commands((ROOT / path).read_text(encoding="utf-8"))
    names = {installed_name(target) for _, _, targets in commands for target in targets}
    assert canonicalize_name(DISTRIBUTION) in names, f"{path} has no `pip install {DISTRIBUTION}`"
    assert any(is_checkout(target) for _, _, targets in commands for target in targets), (
        f"{path} does not say how to install from a checkout (pip install -e .)"
    )


@pytest.mark.parametrize(
    "line",
    [
        "pip install tokenlog",
        "```bash\npip install tokenlog          # from a checkout: pip install -e .\n```",
        "1. `pip install tokenlog`, and decorate each function",
        "OpenTelemetry metrics (`pip install 'tokenlog[otel]'`)",
        "python -m pip install --quiet -U Tokenlog==0.1.0 requests",
        "in a cell: %pip install tokenlog",
        "uv add tokenlog",
        "uv pip install tokenlog",
        "pipx install tokenlog",
        "pip install -e . && pip install tokenlog",
    ],
)
def test_a_bare_pip_install_tokenlog_is_found(line: str) -> None:
    assert len(wrong_install_lines(line)) == 1


@pytest.mark.parametrize(
    "line",
    [
        f"pip install {DISTRIBUTION}",
        f"pip install '{DISTRIBUTION}[otel]' opentelemetry-sdk",
        'pip install -e ".[test]" && python -m pytest',
        "pip install -e . && tokenlog demo",
        "pip install /path/to/tokenlog",
        "pip install git+https://example.invalid/tokenlog.git",
        "pip install -r tokenlog   # a requirements file named tokenlog",
        "pip install tokenlog-other mkdocs",
        "`tokenlog validate`, then pip install nothing",
    ],
)
def test_the_real_name_and_checkouts_are_accepted(line: str) -> None:
    assert wrong_install_lines(line) == []
