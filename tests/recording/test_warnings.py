"""Every TokenlogWarning names the user's own file and line, whichever path led to it.

Each test makes one kind of warning happen through one path (decorator, instrumented SDK call, session exit,
stream end) and asserts that the warning is attributed to this file, at the line of the user's code that
called into tokenlog, never to a module inside the tokenlog package.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tokenlog
from tests.sdk import Mistral
from tokenlog import TokenlogWarning, track_usage
from tokenlog.delivery import guard as delivery_guard
from tokenlog.record import UsageRecord
from tokenlog.testing.server import MistralCompatibleServer


class BrokenSink:
    """A sink whose every write fails (a real exception from the sink, as a full disk would give)."""

    def write(self, record: UsageRecord) -> None:
        raise OSError(28, "No space left on device")

    def flush(self) -> None: ...

    def close(self) -> None: ...


def _only_warning(caught: list[warnings.WarningMessage]) -> warnings.WarningMessage:
    found = [w for w in caught if issubclass(w.category, TokenlogWarning)]
    assert len(found) == 1, [str(w.message) for w in found]
    return found[0]


def _line_of(marker: Callable[[], object]) -> int:
    """The line just after ``marker``'s definition: where each test puts the call that warns."""
    return inspect.getsourcelines(marker)[1] + 2


@pytest.fixture
def caught() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield seen


def _assert_here(warning: warnings.WarningMessage, line: int) -> None:
    assert Path(warning.filename) == Path(__file__), f"{warning.filename}:{warning.lineno}: {warning.message}"
    assert warning.lineno == line, f"{warning.filename}:{warning.lineno}: {warning.message}"


def test_a_failing_sink_warns_at_the_decorated_call(caught: list[warnings.WarningMessage]) -> None:
    @track_usage(sinks=[BrokenSink()])
    def ask() -> dict[str, object]:
        return {"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    def here() -> None: ...

    ask()
    warning = _only_warning(caught)
    assert "No space left on device" in str(warning.message)
    _assert_here(warning, _line_of(here))


def test_a_response_without_usage_warns_at_the_decorated_call(caught: list[warnings.WarningMessage]) -> None:
    @track_usage(sinks=[])
    def ask() -> str:
        return "just text"

    def here() -> None: ...

    ask()
    warning = _only_warning(caught)
    assert "without token usage" in str(warning.message)
    _assert_here(warning, _line_of(here))


def test_a_bad_field_warns_at_the_decorated_call(caught: list[warnings.WarningMessage]) -> None:
    @track_usage(sinks=[])
    def ask() -> dict[str, object]:
        return {"model": "m", "usage": {"prompt_tokens": "abc", "completion_tokens": 1, "total_tokens": 2}}

    def here() -> None: ...

    ask()
    warning = _only_warning(caught)
    assert "prompt_tokens" in str(warning.message)
    _assert_here(warning, _line_of(here))


def test_rows_lost_past_the_retry_buffer_warn_at_the_call(
    caught: list[warnings.WarningMessage], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery_guard, "MAX_PENDING", 1)
    sink = BrokenSink()

    @track_usage(sinks=[sink])
    def ask(n: int) -> dict[str, object]:
        return {"model": "m", "usage": {"prompt_tokens": n, "completion_tokens": 1, "total_tokens": n + 1}}

    ask(1)  # fails: the first warning, and one row kept
    caught.clear()

    def here() -> None: ...

    ask(2)  # the buffer is full: the oldest row is lost, loudly
    lost = [w for w in caught if "rows lost" in str(w.message)]
    assert len(lost) == 1
    _assert_here(lost[0], _line_of(here))
    assert delivery_guard.guard(sink).lost == 1


def test_a_header_mismatch_warns_at_the_decorated_call(tmp_path: Path, caught: list[warnings.WarningMessage]) -> None:
    path = tmp_path / "usage.csv"
    path.write_text("Date,Cost\n2026-01-01,3\n")

    @track_usage(sinks=[path])
    def ask() -> dict[str, object]:
        return {"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    def here() -> None: ...

    ask()
    warning = _only_warning(caught)
    assert str(path) in str(warning.message)
    _assert_here(warning, _line_of(here))


def test_a_failing_sink_warns_at_an_instrumented_sdk_call(
    server: MistralCompatibleServer, caught: list[warnings.WarningMessage]
) -> None:
    with Mistral(api_key="k", server_url=server.url) as client, tokenlog.usage_session(sinks=[BrokenSink()]):

        def here() -> None: ...

        client.chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": "hi"}])
    warning = _only_warning(caught)
    assert "No space left on device" in str(warning.message)
    _assert_here(warning, _line_of(here))


def test_a_stream_without_usage_warns_where_the_user_reads_its_end(
    server: MistralCompatibleServer, caught: list[warnings.WarningMessage]
) -> None:
    server.omit_usage = True
    with Mistral(api_key="k", server_url=server.url) as client, tokenlog.usage_session(sinks=[]):
        stream = client.chat.stream(model="mistral-small-latest", messages=[{"role": "user", "content": "hi"}])
        chunks = iter(stream)
        while True:

            def here() -> None: ...

            if next(chunks, None) is None:
                break
    warning = _only_warning(caught)
    assert "without token usage" in str(warning.message)
    _assert_here(warning, _line_of(here))


def test_a_failing_buffered_sink_warns_at_the_end_of_the_session(caught: list[warnings.WarningMessage]) -> None:
    buffered = tokenlog.BufferedSink(BrokenSink(), max_rows=1000, max_seconds=60)
    session = tokenlog.usage_session(sinks=[buffered])

    def here() -> None: ...

    with session:  # its end writes the buffer, and the sink fails: Python runs __exit__ at the `with` line
        session.record({"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        assert not caught  # still in the buffer
    warning = _only_warning(caught)
    assert "No space left on device" in str(warning.message)
    assert Path(warning.filename) == Path(__file__)
    assert warning.lineno in (_line_of(here), _line_of(here) + 2)  # the `with` line (3.10 may name the last line)


def test_text_a_sink_must_escape_warns_at_the_decorated_call(
    tmp_path: Path, caught: list[warnings.WarningMessage]
) -> None:
    @track_usage(sinks=[tokenlog.SqliteSink(tmp_path / "usage.db")])
    def ask() -> dict[str, object]:
        return {"model": "bad\udc80", "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    def here() -> None: ...

    ask()
    warning = _only_warning(caught)
    assert "not valid Unicode" in str(warning.message)
    _assert_here(warning, _line_of(here))
