"""Every test starts in its own empty directory with tokenlog's defaults and no TOKENLOG_* variables.

The ``server`` fixture is a local Mistral-compatible HTTP server shared by the SDK tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import tokenlog
from tokenlog.testing.server import MistralCompatibleServer


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("TOKENLOG_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    tokenlog.configure()
    yield
    tokenlog.configure()


@pytest.fixture(scope="session")
def server() -> Iterator[MistralCompatibleServer]:
    """One Mistral-compatible server on 127.0.0.1 for the whole run; tests that add faults call ``reset()``."""
    with MistralCompatibleServer() as running:
        yield running
