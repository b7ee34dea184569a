"""A failing sink never breaks the call or the other sinks; its rows wait, bounded, and arrive in order."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import tokenlog
from tests.helpers import read_rows
from tests.sdk import chat_response
from tokenlog import MemorySink, SinkError, UsageRecord, track_usage
from tokenlog.delivery import guard as route


class FlakySink:
    """A real sink that refuses the first ``failures`` rows it is asked to store, then stores everything."""

    def __init__(self, failures: int) -> None:
        self.failures_left = failures
        self.records: list[UsageRecord] = []
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return "FlakySink()"

    def write(self, record: UsageRecord) -> None:
        with self.lock:
            if self.failures_left > 0:
                self.failures_left -= 1
                raise OSError("the collector is down")
            self.records.append(record)

    def flush(self) -> None: ...

    def close(self) -> None: ...


class BrokenSink(FlakySink):
    """Refuses every row until ``repair()``."""

    def __init__(self) -> None:
        super().__init__(failures=0)
        self.broken = True

    def __repr__(self) -> str:
        return "BrokenSink()"

    def write(self, record: UsageRecord) -> None:
        if self.broken:
            raise OSError("the collector is down")
        super().write(record)

    def repair(self) -> None:
        self.broken = False


@pytest.fixture(autouse=True)
def _every_test_leaves_its_sinks_caught_up() -> Iterator[None]:
    yield
    assert [s for s in tokenlog.sink_status() if isinstance(s.sink, FlakySink) and s.pending] == []


@track_usage
def ask(prompt: int) -> dict[str, object]:
    return chat_response(prompt, 1)


def status_of(sink: object) -> tokenlog.SinkStatus:
    (status,) = [s for s in tokenlog.sink_status() if s.sink is sink]
    return status


def flush_until_written(sink: FlakySink, expected: int) -> None:
    for _ in range(expected + 10):  # each retry that fails uses up at least one failure
        tokenlog.flush()
        if len(sink.records) == expected:
            return


def test_a_sink_that_fails_for_a_while_never_reaches_the_call_warns_once_and_catches_up_in_order() -> None:
    sink = FlakySink(failures=3)
    tokenlog.configure(sinks=[sink])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = [ask(i) for i in range(10)]
    assert [r["usage"]["prompt_tokens"] for r in results] == list(range(10))  # type: ignore[index]
    tokenlog_warnings = [w for w in caught if issubclass(w.category, tokenlog.TokenlogWarning)]
    assert len(tokenlog_warnings) == 1
    assert "FlakySink()" in str(tokenlog_warnings[0].message)
    assert "the collector is down" in str(tokenlog_warnings[0].message)

    flush_until_written(sink, 10)
    assert [r.prompt_tokens for r in sink.records] == list(range(10))
    status = status_of(sink)
    assert (status.pending, status.lost, status.failing) == (0, 0, False)


def test_the_status_counts_pending_rows_while_a_sink_fails() -> None:
    sink = BrokenSink()
    tokenlog.configure(sinks=[sink])
    with pytest.warns(tokenlog.TokenlogWarning):
        ask(0)
    for i in range(1, 4):
        ask(i)
    status = status_of(sink)
    assert (status.pending, status.lost, status.failing) == (4, 0, True)
    assert "the collector is down" in str(status.last_error)
    sink.repair()
    tokenlog.flush()
    assert (status_of(sink).pending, status_of(sink).failing) == (0, False)
    assert [r.prompt_tokens for r in sink.records] == [0, 1, 2, 3]


def test_the_next_successful_write_brings_the_kept_rows_first(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = BrokenSink()
    tokenlog.configure(sinks=[sink])
    with pytest.warns(tokenlog.TokenlogWarning):
        ask(0)
    ask(1)
    sink.repair()
    guarded = route.guard(sink)
    monkeypatch.setattr(guarded, "_retry_at", 0.0)  # the backoff has passed
    ask(2)
    assert [r.prompt_tokens for r in sink.records] == [0, 1, 2]


def test_a_failing_sink_does_not_stop_the_other_sinks() -> None:
    broken, memory = BrokenSink(), MemorySink()
    tokenlog.configure(sinks=[broken, memory, "usage.csv"])
    with pytest.warns(tokenlog.TokenlogWarning, match="BrokenSink"):
        ask(0)
    for i in range(1, 5):
        ask(i)
    assert [r.prompt_tokens for r in memory.records] == list(range(5))
    assert [row["PromptTokens"] for row in read_rows("usage.csv")] == ["0", "1", "2", "3", "4"]
    broken.repair()
    tokenlog.flush()


def test_kept_rows_are_written_in_the_background_once_the_sink_works_again() -> None:
    sink = BrokenSink()
    tokenlog.configure(sinks=[sink])
    with pytest.warns(tokenlog.TokenlogWarning):
        ask(1)
    sink.repair()  # and no further call, no flush: the retry thread notices
    deadline = time.monotonic() + 30
    while not sink.records and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [r.prompt_tokens for r in sink.records] == [1]
    assert status_of(sink).pending == 0


def test_past_the_bound_the_oldest_rows_are_dropped_counted_and_reported_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(route, "MAX_PENDING", 5)
    sink = BrokenSink()
    tokenlog.configure(sinks=[sink])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(8):
            ask(i)
    messages = [str(w.message) for w in caught if issubclass(w.category, tokenlog.TokenlogWarning)]
    assert len(messages) == 2
    assert "has failed for 5 rows; 1 rows lost so far" in messages[1]
    status = status_of(sink)
    assert (status.pending, status.lost) == (5, 3)
    sink.repair()
    tokenlog.flush()
    assert [r.prompt_tokens for r in sink.records] == [3, 4, 5, 6, 7]


def test_strict_mode_raises_sink_error_after_the_other_sinks_got_the_row() -> None:
    broken, memory = BrokenSink(), MemorySink()
    tokenlog.configure(sinks=[broken, memory], on_error="raise")
    with pytest.raises(SinkError, match=r"BrokenSink\(\) failed: OSError\('the collector is down'\)"):
        ask(7)
    assert [r.prompt_tokens for r in memory.records] == [7]
    assert status_of(broken).pending == 0  # strict mode keeps nothing: the error is the report


def test_warnings_turned_into_errors_reach_the_caller_but_the_row_is_still_kept() -> None:
    sink = BrokenSink()
    tokenlog.configure(sinks=[sink])
    with warnings.catch_warnings():
        warnings.simplefilter("error", tokenlog.TokenlogWarning)
        with pytest.raises(tokenlog.TokenlogWarning):
            ask(1)
    assert status_of(sink).pending == 1
    sink.repair()
    tokenlog.flush()


def test_a_sink_without_write_many_gets_kept_rows_one_by_one_and_none_twice() -> None:
    sink = FlakySink(failures=1)
    tokenlog.configure(sinks=[sink])
    with pytest.warns(tokenlog.TokenlogWarning):
        ask(0)
    for i in range(1, 4):
        ask(i)
    flush_until_written(sink, 4)
    assert [r.prompt_tokens for r in sink.records] == [0, 1, 2, 3]


EXIT_CHILD = textwrap.dedent(
    """
    import tokenlog

    class Down:
        def write(self, record):
            raise OSError("the collector is down")
        def flush(self): ...
        def close(self): ...

    tokenlog.configure(sinks=[Down()])

    @tokenlog.track_usage
    def ask(i):
        return {"model": "mistral-small-latest", "usage": {"prompt_tokens": i, "completion_tokens": 1}}

    for i in range(3):
        ask(i)
    """
)


def test_rows_still_pending_at_exit_go_to_a_fallback_file_named_in_a_warning(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", EXIT_CHILD],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "TMPDIR": str(tmp_path / "temp"), "XDG_STATE_HOME": str(tmp_path / "state")},
    )
    # a sink with no file of its own: the rows go to the user's state directory, not the shared temp directory
    (fallback,) = (tmp_path / "state" / "tokenlog").glob("tokenlog-unwritten-*.csv")
    assert not (tmp_path / "temp").exists()
    assert str(fallback) in child.stderr
    assert "3 rows could not be written" in child.stderr
    assert [row["PromptTokens"] for row in read_rows(fallback)] == ["0", "1", "2"]
