"""MkDocs hooks (see ``hooks:`` in mkdocs.yml): pages generated while the site is built.

- ``reference/cli.md``: the marker ``<!-- cli-help -->`` becomes the ``--help`` text of ``tokenlog`` and of each
  of its commands, taken from the argparse parser itself, so the reference cannot drift from the program.
- ``benchmarks.md`` is written by ``python -m benchmarks.run``; a checkout where nobody ran it yet gets a page
  that says how to make it, instead of a broken link.

tests/docs/test_docs_site.py checks both against the real program.
"""

from __future__ import annotations

import argparse
from typing import Any

CLI_MARKER = "<!-- cli-help -->"
HELP_WIDTH = 78
"""The width the help text is wrapped at on the page: what argparse uses on an 80-column terminal."""

BENCHMARKS_PLACEHOLDER = """# Benchmarks

The benchmark results have not been generated in this checkout. Run

```bash
python -m benchmarks.run
```

from a checkout of tokenlog: it measures tokenlog against the hand-written helper and the physical limit, and
writes this page (`docs/benchmarks.md`).
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    from tokenlog.cli import HelpFormatter  # the program's own: the examples at the end stay one a line

    return HelpFormatter(prog, width=HELP_WIDTH)


def cli_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """``("tokenlog", parser)``, then ``("tokenlog COMMAND", subparser)`` for each command, in the parser's order."""
    from tokenlog import cli

    parser = cli._parser()
    found = [("tokenlog", parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += [(f"tokenlog {name}", sub) for name, sub in action.choices.items()]
    for _, each in found:
        each.formatter_class = _formatter
    return found


def help_text(parser: argparse.ArgumentParser) -> str:
    """What ``--help`` prints for ``parser`` on a terminal ``HELP_WIDTH`` columns wide."""
    parser.formatter_class = _formatter
    return parser.format_help()


def cli_reference() -> str:
    """The Markdown that replaces the marker: one section per command, with its help text."""
    sections = []
    for name, parser in cli_parsers():
        anchor = name.replace(" ", "-")
        sections.append(f"## `{name}` {{ #{anchor} }}\n\n```text\n$ {name} --help\n{help_text(parser).rstrip()}\n```\n")
    return "\n".join(sections)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if CLI_MARKER in markdown:
        return markdown.replace(CLI_MARKER, cli_reference())
    return markdown


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    if files.get_file_from_path("benchmarks.md") is None:
        from mkdocs.structure.files import File

        files.append(File.generated(config, "benchmarks.md", content=BENCHMARKS_PLACEHOLDER))
    return files
