"""@track_usage records one row per successful call, whatever the calling convention."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import inspect
import json
import os
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import portalocker
import pytest
import wrapt

import tokenlog
from tests.helpers import read_rows
from tests.sdk import chat_response
from tokenlog import MemorySink, UsageRecord, track_usage
from tokenlog.record import FIELD_NAMES


def test_a_decorated_function_writes_one_row_to_the_default_csv_and_returns_the_same_object() -> None:
    response = chat_response(10, 5)

    @track_usage
    def ask() -> dict[str, object]:
        return response

    assert ask() is response
    rows = read_rows("mistral_usage_log.csv")
    assert [(r["Model"], r["PromptTokens"], r["CompletionTokens"], r["TotalTokens"]) for r in rows] == [
        ("mistral-small-latest", "10", "5", "15")
    ]


def test_the_decorator_keeps_the_signature_name_and_docstring() -> None:
    def ask(prompt: str, *, temperature: float = 0.2) -> dict[str, object]:
        """Ask the model."""
        return chat_response()

    tracked = track_usage(ask)
    assert inspect.signature(tracked) == inspect.signature(ask)
    assert (tracked.__name__, tracked.__doc__) == ("ask", "Ask the model.")


def test_an_async_function_is_awaited_then_recorded() -> None:
    sink = MemorySink()

    @track_usage(sinks=[sink])
    async def ask() -> dict[str, object]:
        await asyncio.sleep(0)
        return chat_response(3, 4)

    assert inspect.iscoroutinefunction(ask)
    result = asyncio.run(ask())
    assert result["model"] == "mistral-small-latest"
    assert [r.total_tokens for r in sink.records] == [7]


def test_methods_classmethods_and_staticmethods_are_recorded_with_their_qualified_names() -> None:
    sink = MemorySink()

    class Assistant:
        @track_usage(sinks=[sink])
        def method(self) -> dict[str, object]:
            return chat_response(1, 1)

        @track_usage(sinks=[sink])
        @classmethod
        def class_first(cls) -> dict[str, object]:
            return chat_response(1, 2)

        @classmethod
        @track_usage(sinks=[sink])
        def class_second(cls) -> dict[str, object]:
            return chat_response(1, 3)

        @track_usage(sinks=[sink])
        @staticmethod
        def static() -> dict[str, object]:
            return chat_response(1, 4)

    Assistant().method()
    Assistant.class_first()
    Assistant.class_second()
    Assistant().static()
    assert [r.completion_tokens for r in sink.records] == [1, 2, 3, 4]
    names = [r.function for r in sink.records]
    assert all(name and name.startswith(__name__ + ".") for name in names)
    assert [name.rsplit(".", 1)[-1] for name in names if name] == ["method", "class_first", "class_second", "static"]


def test_a_generator_is_recorded_when_the_item_with_usage_passes_through() -> None:
    sink = MemorySink()
    chunks: list[dict[str, object]] = [
        {"choices": [{"delta": {"content": "Hel"}}], "usage": None},
        {"choices": [{"delta": {"content": "lo"}}], "model": "mistral-small-latest", "usage": None},
        {"choices": [], "model": "mistral-small-latest", "usage": {"prompt_tokens": 4, "completion_tokens": 2}},
    ]

    @track_usage(sinks=[sink])
    def stream() -> Iterator[dict[str, object]]:
        yield from chunks

    iterator = stream()
    assert inspect.isgenerator(iterator)
    assert next(iterator) is chunks[0]
    assert next(iterator) is chunks[1]
    assert sink.records == []
    assert next(iterator) is chunks[2]
    assert [r.total_tokens for r in sink.records] == [6]
    assert list(iterator) == []


def test_a_generator_still_accepts_send() -> None:
    sink = MemorySink()

    @track_usage(sinks=[sink])
    def echo() -> Iterator[object]:
        received = yield "ready"
        yield {"model": "m", "got": received, "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    generator = echo()
    assert next(generator) == "ready"
    assert generator.send("ping")["got"] == "ping"
    assert len(sink.records) == 1


def test_an_async_generator_is_recorded_when_the_item_with_usage_passes_through() -> None:
    sink = MemorySink()

    @track_usage(sinks=[sink])
    async def stream() -> AsyncIterator[dict[str, object]]:
        yield {"usage": None}
        yield {"model": "m", "usage": {"prompt_tokens": 2, "completion_tokens": 5}}

    async def consume() -> list[dict[str, object]]:
        return [item async for item in stream()]

    items = asyncio.run(consume())
    assert len(items) == 2
    assert [r.total_tokens for r in sink.records] == [7]


def test_an_exception_passes_through_unchanged_and_writes_nothing() -> None:
    error = ValueError("the API said no")

    @track_usage
    def ask() -> object:
        raise error

    with pytest.raises(ValueError, match="the API said no") as caught:
        ask()
    assert caught.value is error
    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    assert frames[-1] == "ask"
    assert not Path("mistral_usage_log.csv").exists()


def test_an_async_exception_passes_through_unchanged_and_writes_nothing() -> None:
    @track_usage
    async def ask() -> object:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        asyncio.run(ask())
    assert not Path("mistral_usage_log.csv").exists()


def test_the_record_carries_function_latency_and_tags() -> None:
    sink = MemorySink()

    @track_usage(sinks=[sink], tags={"feature": "summary"}, name="summarise")
    def ask() -> dict[str, object]:
        time.sleep(0.05)
        return chat_response()

    ask()
    (record,) = sink.records
    assert record.function == "summarise"
    assert record.tags == {"feature": "summary"}
    assert record.latency_ms is not None
    assert 50 <= record.latency_ms < 5_000


def test_the_model_falls_back_to_the_decorator_then_to_the_calls_model_argument() -> None:
    sink = MemorySink()

    @track_usage(sinks=[sink])
    def by_argument(model: str) -> dict[str, object]:
        return {"usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    @track_usage(sinks=[sink], model="codestral-latest")
    def by_decorator(model: str) -> dict[str, object]:
        return {"usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    by_argument(model="mistral-tiny")
    by_decorator(model="mistral-tiny")
    assert [r.model for r in sink.records] == ["mistral-tiny", "codestral-latest"]


def test_nested_decorated_functions_returning_the_same_response_write_one_row() -> None:
    @track_usage
    def inner() -> dict[str, object]:
        return chat_response()

    @track_usage
    def outer() -> dict[str, object]:
        return inner()

    @track_usage
    def outermost() -> tuple[str, dict[str, object]]:
        return ("text", outer())

    outermost()
    assert len(read_rows("mistral_usage_log.csv")) == 1


def test_two_calls_returning_distinct_responses_write_two_rows() -> None:
    @track_usage
    def ask() -> dict[str, object]:
        return chat_response()

    ask()
    ask()
    assert len(read_rows("mistral_usage_log.csv")) == 2


def test_a_function_returning_no_usage_warns_once_and_writes_nothing() -> None:
    @track_usage
    def ask() -> str:
        return "just text"

    with tokenlog.usage_session() as session, pytest.warns(tokenlog.TokenlogWarning, match="without token usage"):
        ask()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with tokenlog.usage_session() as again:
            ask()  # the second call is counted, not warned about again
    assert (session.calls_without_usage, again.calls_without_usage) == (1, 1)
    assert not Path("mistral_usage_log.csv").exists()


def test_tokenlog_disable_turns_recording_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENLOG_DISABLE", "1")
    tokenlog.configure()
    response = chat_response()

    @track_usage
    def ask() -> dict[str, object]:
        return response

    with tokenlog.usage_session() as session:
        assert ask() is response
    assert session.calls == 0
    assert not Path("mistral_usage_log.csv").exists()


def test_tokenlog_file_moves_the_default_csv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "usage.csv"
    target.parent.mkdir()
    monkeypatch.setenv("TOKENLOG_FILE", str(target))
    tokenlog.configure()

    @track_usage
    def ask() -> dict[str, object]:
        return chat_response()

    ask()
    assert len(read_rows(target)) == 1
    assert not Path("mistral_usage_log.csv").exists()


def test_tokenlog_file_with_a_jsonl_suffix_and_a_tilde_is_a_jsonl_file_in_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before: TOKENLOG_FILE was always a CSV file, and ``~`` a directory named ``~``."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("TOKENLOG_FILE", "~/usage.jsonl")
    tokenlog.configure()

    @track_usage
    def ask() -> dict[str, object]:
        return chat_response(3, 4)

    ask()
    (line,) = (tmp_path / "home" / "usage.jsonl").read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["total_tokens"] == 7
    assert not Path("~").exists()


BAD_TOKENLOG_FILE = """\
import tokenlog

@tokenlog.track_usage
def ask():
    return {"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

ask()
"""


def test_tokenlog_file_whose_suffix_names_no_format_stops_the_program_at_its_first_decorator(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(BAD_TOKENLOG_FILE, encoding="utf-8")
    env = {**os.environ, "TOKENLOG_FILE": "usage.json"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 1
    assert f'File "{script}", line 3, in <module>' in done.stderr  # the user's line
    assert done.stderr.rstrip().endswith(
        "ValueError: TOKENLOG_FILE 'usage.json' has the suffix '.json', which names no log format tokenlog writes: "
        "end the file name in .csv (CSV), .jsonl or .ndjson (JSON Lines), .db, .sqlite or .sqlite3 (SQLite); "
        "or leave it unset and pass configure(sinks=['csv://FILE'])"
    )
    assert list(tmp_path.iterdir()) == [script]  # nothing written anywhere, no call made


def test_a_sink_given_as_a_path_is_a_csv_file(tmp_path: Path) -> None:
    @track_usage(sink=tmp_path / "feature.csv")
    def ask() -> dict[str, object]:
        return chat_response(2, 2)

    ask()
    assert [r["TotalTokens"] for r in read_rows(tmp_path / "feature.csv")] == ["4"]
    assert not Path("mistral_usage_log.csv").exists()


def test_something_that_is_not_a_sink_is_refused_at_decoration_time() -> None:
    with pytest.raises(TypeError, match="is not a sink"):
        track_usage(sinks=[42])  # type: ignore[list-item]


def _sdk_response(prompt: int = 12, completion: int = 5) -> object:
    """A mistralai ChatCompletionResponse, as the SDK builds it from the JSON it received."""
    try:
        from mistralai.client.models import ChatCompletionResponse
    except ImportError:  # mistralai 1.x
        from mistralai.models import ChatCompletionResponse  # type: ignore[no-redef,attr-defined,unused-ignore]
    return ChatCompletionResponse.model_validate(chat_response(prompt, completion))


def test_every_fresh_sdk_response_gets_its_row_even_where_a_freed_one_lived() -> None:
    # Each response is freed before the next is built, so Python hands its memory (and id) to the next
    # one: "recorded once, by identity" must not take a new response for the old one.
    sink = MemorySink()
    usage_ids: list[int] = []

    @track_usage(sinks=[sink])
    def ask(prompt: int) -> object:
        response = _sdk_response(prompt)
        usage_ids.append(id(response.usage))  # type: ignore[attr-defined]
        return response

    for prompt in range(300):
        ask(prompt)
    assert len(set(usage_ids)) < len(usage_ids)  # ids were reused: the case this test is about happened
    assert [record.prompt_tokens for record in sink.records] == list(range(300))


def test_the_same_sdk_response_returned_again_by_a_cache_gives_one_row() -> None:
    sink = MemorySink()
    fetches: list[str] = []

    @track_usage(sinks=[sink])
    @functools.lru_cache(maxsize=8)
    def ask(prompt: str) -> object:
        fetches.append(prompt)
        return _sdk_response(len(prompt))

    for prompt in ["hi", "hello", "hi", "hi", "hello"]:
        ask(prompt)
    assert fetches == ["hi", "hello"]
    assert [record.prompt_tokens for record in sink.records] == [2, 5]


def test_session_record_of_a_response_a_decorator_already_recorded_writes_nothing_more() -> None:
    sink = MemorySink()

    @track_usage(sinks=[sink])
    def ask() -> object:
        return _sdk_response(7, 3)

    response = ask()
    with tokenlog.usage_session() as session:
        again = session.record(response)
    assert again is not None
    assert (again.model, again.prompt_tokens, again.completion_tokens, again.total_tokens) == (
        "mistral-small-latest",
        7,
        3,
        10,
    )
    assert len(sink.records) == 1
    assert session.calls == 0  # counted where it was recorded (outside this session), not twice
    assert not Path("mistral_usage_log.csv").exists()


def test_the_last_1024_responses_recorded_are_recognised_whoever_recorded_them() -> None:
    sink = MemorySink()
    responses = [_sdk_response(prompt) for prompt in range(1500)]
    tracked = track_usage(sinks=[sink])(lambda i: responses[i])
    for i in range(1500):
        tracked(i)
    for response in responses[-1024:]:
        assert tracked(responses.index(response)) is response
    assert len(sink.records) == 1500


def test_a_row_written_straight_to_the_csv_file_reads_as_the_record_says(tmp_path: Path) -> None:
    # Decorator -> CsvSink is the default route, and writes the row without building a record first.
    path = tmp_path / "usage.csv"
    sink = MemorySink()
    tokenlog.track_usage(sinks=[tokenlog.CsvSink(path)])(lambda: _sdk_response(12, 5))()
    tokenlog.track_usage(sinks=[sink])(lambda: _sdk_response(12, 5))()
    (row,) = read_rows(path)
    expected = sink.records[0]
    assert (row["Model"], row["PromptTokens"], row["CompletionTokens"], row["TotalTokens"]) == (
        expected.model,
        "12",
        "5",
        "17",
    )
    written = datetime.fromisoformat(row["TimestampUTC"])
    assert written.tzinfo is not None
    assert abs((expected.timestamp - written).total_seconds()) < 5


def test_rows_written_straight_to_a_csv_file_deleted_meanwhile_are_written_again(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    ask = tokenlog.track_usage(sinks=[tokenlog.CsvSink(path)])(_sdk_response)
    ask(1)
    path.unlink()
    ask(2)
    ask(3)
    tokenlog.flush()
    assert [row["PromptTokens"] for row in read_rows(path)] == ["2", "3"]


def test_a_row_the_csv_file_refuses_on_the_fast_path_is_kept_and_written_later(tmp_path: Path) -> None:
    path = tmp_path / "usage.csv"
    ask = tokenlog.track_usage(sinks=[tokenlog.CsvSink(path, lock_timeout=0.05)])(_sdk_response)
    ask(1)
    with open(path, "a") as other:
        portalocker.lock(other, portalocker.LockFlags.EXCLUSIVE)  # another writer holds the file too long
        with pytest.warns(tokenlog.TokenlogWarning, match="lock"):
            response = ask(2)
        portalocker.unlock(other)
    assert response.usage.prompt_tokens == 2  # type: ignore[attr-defined]
    assert [row["PromptTokens"] for row in read_rows(path)] == ["1"]
    tokenlog.flush()
    assert [row["PromptTokens"] for row in read_rows(path)] == ["1", "2"]


def test_an_sdk_response_inside_sessions_counts_in_each_and_is_named_after_the_innermost() -> None:
    sink = MemorySink()
    ask = track_usage(tags={"call": "c"})(lambda: _sdk_response(3, 2))
    with (
        tokenlog.usage_session("outer", tags={"team": "t"}) as outer,
        tokenlog.usage_session("inner", sinks=[sink]) as inner,
    ):
        ask()
        ask()
    assert [(r.session, dict(r.tags), r.total_tokens) for r in sink.records] == [
        ("inner", {"team": "t", "call": "c"}, 5),
        ("inner", {"team": "t", "call": "c"}, 5),
    ]
    assert (outer.calls, inner.calls, outer.total_tokens, inner.total_tokens) == (2, 2, 10, 10)
    assert not Path("mistral_usage_log.csv").exists()  # the inner session's sinks took the rows


def test_a_record_built_on_the_fast_path_is_the_record_the_dataclass_builds() -> None:
    sink = MemorySink()
    ask = track_usage(sinks=[sink], tags={"feature": "f"})(lambda: _sdk_response(7, 3))
    ask()
    with tokenlog.usage_session("run", sinks=[sink]):
        ask()
    for record in sink.records:
        assert type(record) is UsageRecord
        rebuilt = UsageRecord(*(getattr(record, name) for name in FIELD_NAMES))  # the checked __init__
        assert record == rebuilt
        assert hash(record) == hash(rebuilt)
        assert repr(record) == repr(rebuilt)
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.model = "other"  # type: ignore[misc]
        assert dataclasses.replace(record, model="other").model == "other"
        assert copy.copy(record) == record
    assert [(r.session, r.total_tokens, dict(r.tags)) for r in sink.records] == [
        (None, 10, {"feature": "f"}),
        ("run", 10, {"feature": "f"}),
    ]


def test_a_free_threaded_python_builds_records_with_the_checked_init() -> None:
    # There, assigning __class__ stops every thread; tokenlog then takes the dataclass's own __init__.
    script = (
        "import sys\n"
        "sys._is_gil_enabled = lambda: False\n"
        "import tokenlog\n"
        "from tokenlog import record, route\n"
        "assert record.trusted_record is record._checked_record, record.trusted_record\n"
        "assert route.trusted_record is record._checked_record\n"
        "sink = tokenlog.MemorySink()\n"
        "class Usage:\n"
        "    prompt_tokens, completion_tokens, total_tokens = 2, 3, 5\n"
        "class Response:\n"
        "    model, id, usage = 'm', 'r-1', Usage()\n"
        "tokenlog.track_usage(sinks=[sink])(Response)()\n"
        "print(type(sink.records[0]).__name__, sink.records[0].total_tokens)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["UsageRecord", "5"]


def _response_of(tag: int) -> dict[str, object]:
    return chat_response(1, tag)


class _Callable:
    def __call__(self, tag: int) -> dict[str, object]:
        return chat_response(1, tag)


class _Assistant:
    def ask(self, tag: int) -> dict[str, object]:
        return chat_response(1, tag)


def test_every_kind_of_callable_is_called_with_its_own_arguments_and_recorded() -> None:
    # Plain functions take tokenlog's own unbound call (wrapt's looks up __self__ on every call);
    # everything else goes through wrapt's binding as before.
    sink = MemorySink()
    seen: list[object] = []

    def named_self(self: int, tag: int) -> dict[str, object]:  # "self" as an ordinary argument
        seen.append(self)
        return chat_response(1, tag)

    def with_attribute(tag: int) -> dict[str, object]:
        return chat_response(1, tag)

    with_attribute.__self__ = "not a method"  # type: ignore[attr-defined]
    assistant = _Assistant()
    tracked = [
        track_usage(sinks=[sink])(_response_of),
        track_usage(sinks=[sink])(named_self),
        track_usage(sinks=[sink])(with_attribute),
        track_usage(sinks=[sink])(assistant.ask),  # a bound method
        track_usage(sinks=[sink])(_Callable()),  # a callable object
        track_usage(sinks=[sink])(functools.partial(_response_of)),
    ]
    tracked[0](1)
    tracked[1](self=99, tag=2)
    tracked[2](3)
    tracked[3](4)
    tracked[4](tag=5)
    tracked[5](6)
    assert [r.completion_tokens for r in sink.records] == [1, 2, 3, 4, 5, 6]
    assert seen == [99]
    assert all(isinstance(wrapper, wrapt.FunctionWrapper) for wrapper in tracked)
    assert tracked[0].__wrapped__ is _response_of
    assert tracked[0].__name__ == "_response_of"
