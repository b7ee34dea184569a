"""Every test starts in its own empty directory with tokenlog's defaults and no TOKENLOG_* variables.

``XDG_STATE_HOME`` is the test's own (where rows unwritten at exit may be saved; child processes inherit it).
Between tests ``tokenlog.testing.reset()`` restores the configuration, uninstruments the SDKs, stops captures,
forgets which responses were recorded and drops what failing sinks held.

The ``server`` fixture is a local Mistral-compatible HTTP server shared by the SDK tests. Tests marked
``slow`` (the stress run) are skipped unless selected with ``-m``: ``python -m pytest -m slow``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

import tokenlog
import tokenlog.testing
from tests.sdk import Mistral
from tokenlog.testing.server import MistralCompatibleServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.option.markexpr:
        return  # `-m slow`, `-m "not slow"`: the user chose
    skip = pytest.mark.skip(reason="stress run: python -m pytest -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("TOKENLOG_"):
            monkeypatch.delenv(name)
    # rows unwritten at exit may be saved in the user's state directory: the test's, never the real one
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / ".state"))
    monkeypatch.chdir(tmp_path)
    tokenlog.testing.reset()
    yield
    tokenlog.testing.reset()


@pytest.fixture(scope="session")
def _running_server() -> Iterator[MistralCompatibleServer]:
    with MistralCompatibleServer() as running:
        yield running


@pytest.fixture
def server(_running_server: MistralCompatibleServer) -> Iterator[MistralCompatibleServer]:
    """One Mistral-compatible server on 127.0.0.1 for the whole run, with no faults set when a test starts."""
    _running_server.reset()
    yield _running_server
    _running_server.reset()


@pytest.fixture
def mistral(server: MistralCompatibleServer) -> Iterator[Mistral]:
    """The real mistralai SDK (whichever major version is installed) pointed at the local server."""
    with Mistral(api_key="test-key", server_url=server.url) as client:
        yield client


@pytest.fixture
def oai(server: MistralCompatibleServer) -> Iterator[openai.OpenAI]:
    """The real openai SDK pointed at the local server, without retries."""
    with openai.OpenAI(base_url=server.url + "/v1", api_key="test-key", max_retries=0) as client:
        yield client
