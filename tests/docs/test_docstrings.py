"""The examples in tokenlog's docstrings run and show what they claim."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import tokenlog

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(tokenlog.__path__, "tokenlog.")
    if not info.name.startswith("tokenlog.testing") and info.name != "tokenlog.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
