"""Every test starts in its own empty directory with tokenlog's defaults and no TOKENLOG_* variables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import tokenlog


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("TOKENLOG_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    tokenlog.configure()
    yield
    tokenlog.configure()
