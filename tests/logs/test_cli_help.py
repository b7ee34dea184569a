"""Every command's `--help` ends with two examples, each a command line the parser accepts."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

import pytest

from tests.helpers import run_tokenlog as run
from tokenlog import cli


def commands() -> list[str]:
    parser = cli._parser()
    found = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return list(found[0].choices)


@pytest.mark.parametrize("command", commands())
def test_help_ends_with_two_examples_that_parse(command: str, tmp_path: Path) -> None:
    result = run(command, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.rstrip("\n").splitlines()
    assert lines[-3] == "examples:"
    examples = lines[-2:]
    for example in examples:
        assert example.startswith("  tokenlog "), example
        words = shlex.split(example)
        assert words[1] == command
        args = cli._parser().parse_args(words[1:])  # a bad example exits 2 here
        assert args.command == command
