"""usage_session scopes a block: it sees what happens inside, totals it, and routes its rows."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import tokenlog
from tests.helpers import read_rows
from tests.sdk import chat_response
from tokenlog import MemorySink, track_usage, usage_session


@track_usage
def ask(prompt: int = 10, completion: int = 5, model: str = "mistral-small-latest") -> dict[str, object]:
    return chat_response(prompt, completion, model=model)


@track_usage
async def ask_async(prompt: int = 10, completion: int = 5, model: str = "mistral-small-latest") -> dict[str, object]:
    await asyncio.sleep(0)
    return chat_response(prompt, completion, model=model)


def test_a_session_totals_the_calls_made_inside_it_by_model() -> None:
    with usage_session("batch") as session:
        ask(10, 5)
        ask(1, 1, model="mistral-large-latest")
        ask(20, 10)
    assert (session.calls, session.prompt_tokens, session.completion_tokens, session.total_tokens) == (3, 31, 16, 47)
    small = session.by_model["mistral-small-latest"]
    assert (small.calls, small.total_tokens) == (2, 45)
    assert session.by_model["mistral-large-latest"].total_tokens == 2
    assert [r.session for r in session.records] == ["batch"] * 3
    assert len(read_rows("mistral_usage_log.csv")) == 3


def test_calls_outside_the_block_do_not_count() -> None:
    ask()
    with usage_session() as session:
        ask()
    ask()
    assert session.calls == 1


def test_nested_sessions_each_see_the_inner_records_and_rows_name_the_innermost() -> None:
    with usage_session("outer") as outer:
        ask(1, 1)
        with usage_session("inner") as inner:
            ask(2, 2)
        ask(3, 3)
    assert [r.total_tokens for r in outer.records] == [2, 4, 6]
    assert [r.total_tokens for r in inner.records] == [4]
    assert [r.session for r in outer.records] == ["outer", "inner", "outer"]


def test_session_tags_merge_outer_to_inner_and_the_decorators_win() -> None:
    sink = MemorySink()

    @track_usage(sinks=[sink], tags={"feature": "search"})
    def tagged() -> dict[str, object]:
        return chat_response()

    with usage_session(tags={"team": "a", "run": "1"}), usage_session(tags={"run": "2"}):
        tagged()
    assert dict(sink.records[0].tags) == {"team": "a", "run": "2", "feature": "search"}


def test_record_adds_a_plain_dict_response_by_hand() -> None:
    with usage_session() as session:
        record = session.record(chat_response(8, 2))
    assert record is not None
    assert record.total_tokens == 10
    assert session.records == [record]
    assert read_rows("mistral_usage_log.csv")[0]["TotalTokens"] == "10"


def test_record_of_an_object_already_recorded_gives_one_row_and_the_same_record() -> None:
    with usage_session() as session:
        response = ask()
        first = session.records[0]
        assert session.record(response) is first
    assert session.calls == 1
    assert len(read_rows("mistral_usage_log.csv")) == 1


def test_record_of_something_without_usage_returns_none() -> None:
    with usage_session() as session:
        assert session.record({"choices": []}) is None
    assert session.calls == 0


def test_sinks_route_the_blocks_rows_away_from_the_default_file() -> None:
    sink = MemorySink()
    with usage_session(sinks=[sink]):
        ask()
    assert len(sink.records) == 1
    assert not Path("mistral_usage_log.csv").exists()


def test_the_innermost_session_with_sinks_decides_where_rows_go(tmp_path: Path) -> None:
    outer_sink, inner_sink = MemorySink(), MemorySink()
    with usage_session(sinks=[outer_sink]), usage_session("no sinks of its own"):
        ask()
        with usage_session(sinks=[inner_sink, tmp_path / "inner.csv"]):
            ask()
    assert len(outer_sink.records) == 1
    assert len(inner_sink.records) == 1
    assert len(read_rows(tmp_path / "inner.csv")) == 1


def test_two_threads_with_their_own_sessions_never_mix() -> None:
    barrier = threading.Barrier(2)
    sessions: dict[str, tokenlog.UsageSession] = {}

    def work(name: str, prompt: int) -> None:
        with usage_session(name) as session:
            sessions[name] = session
            for _ in range(50):
                barrier.wait()
                ask(prompt, 0)

    threads = [threading.Thread(target=work, args=(name, prompt)) for name, prompt in (("a", 1), ("b", 100))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {r.prompt_tokens for r in sessions["a"].records} == {1}
    assert {r.prompt_tokens for r in sessions["b"].records} == {100}
    assert sessions["a"].calls == sessions["b"].calls == 50


def test_two_asyncio_tasks_with_their_own_sessions_never_mix() -> None:
    async def work(name: str, prompt: int) -> tokenlog.UsageSession:
        async with usage_session(name) as session:
            for _ in range(20):
                await ask_async(prompt, 0)
        return session

    async def main() -> list[tokenlog.UsageSession]:
        return list(await asyncio.gather(work("a", 1), work("b", 100)))

    first, second = asyncio.run(main())
    assert {r.prompt_tokens for r in first.records} == {1}
    assert {r.prompt_tokens for r in second.records} == {100}
    assert first.calls == second.calls == 20


def test_tasks_started_inside_a_session_belong_to_it() -> None:
    async def main() -> tokenlog.UsageSession:
        async with usage_session() as session:
            await asyncio.gather(*(asyncio.create_task(ask_async(1, 1)) for _ in range(5)))
        return session

    assert asyncio.run(main()).calls == 5


def test_threads_and_pools_started_inside_a_session_count_for_it() -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:  # its workers start outside the session, and outlive it
        list(pool.map(lambda _: ask(), range(2)))
        with usage_session() as session:
            list(pool.map(lambda _: ask(), range(4)))
            list(pool.map(session.bind(lambda _: ask()), range(2)))  # bound as well: counted once
            thread = threading.Thread(target=ask)
            thread.start()
            thread.join()
        list(pool.map(lambda _: ask(), range(3)))  # after the session: the same workers run outside it
    assert session.calls == 7


def test_follow_threads_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENLOG_FOLLOW_THREADS", "0")
    with usage_session() as session, ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda _: ask(), range(4)))
        assert session.calls == 0  # threads do not inherit the session
        list(pool.map(session.bind(lambda _: ask()), range(6)))
    assert session.calls == 6


def test_a_session_is_entered_once_at_a_time() -> None:
    session = usage_session()
    with session, pytest.raises(RuntimeError, match="already open"):
        session.__enter__()


def test_a_session_can_be_reopened_and_keeps_counting() -> None:
    session = usage_session()
    with session:
        ask()
    with session:
        ask()
    assert session.calls == 2


def test_record_after_the_block_still_joins_the_session() -> None:
    with usage_session() as session:
        pass
    session.record(chat_response(1, 2))
    assert session.total_tokens == 3


def test_sinks_may_be_any_iterable_and_the_sinks_made_from_paths_are_closed_at_the_end(tmp_path: Path) -> None:
    kept = MemorySink()
    specs = (spec for spec in [tmp_path / "usage.csv", kept])  # a generator: read once
    with usage_session(sinks=specs) as session:
        session.record(chat_response(2, 3))
    assert [r.total_tokens for r in kept.records] == [5]
    assert [row["TotalTokens"] for row in read_rows(tmp_path / "usage.csv")] == ["5"]
    assert session._owned == [session._sinks[0]]  # the CsvSink it made from the path, not the sink it was given
