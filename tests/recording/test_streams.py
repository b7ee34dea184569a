"""Streams through @track_usage: real mistralai and openai streams from the local server, and generators.

Each stream gives exactly one row, made when the chunk carrying usage arrives; a stream that ends,
is closed or is abandoned without usage gives no row, one warning, and a session count.
"""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest

from tests.helpers import read_rows
from tests.sdk import Mistral
from tokenlog import MemorySink, TokenlogWarning, track_usage, usage_session
from tokenlog.testing.server import AGENT_MODEL, MistralCompatibleServer, count_tokens, reply_text

QUESTION = "tell me a short story about a lighthouse keeper and his cat"
MESSAGES = [{"role": "user", "content": QUESTION}]
PROMPT = count_tokens(QUESTION)
COMPLETION = count_tokens(reply_text(QUESTION))
ROW = (PROMPT, COMPLETION, PROMPT + COMPLETION)
LOG = Path("mistral_usage_log.csv")


def rows() -> list[tuple[str, int, int, int]]:
    if not LOG.exists():
        return []
    return [
        (r["Model"], int(r["PromptTokens"]), int(r["CompletionTokens"]), int(r["TotalTokens"])) for r in read_rows(LOG)
    ]


def forget(held: list[Any]) -> None:
    """Drop the only references to some streams and collect them."""
    held.clear()
    gc.collect()


def test_mistral_chat_stream_writes_one_row_when_the_usage_chunk_arrives(mistral: Mistral) -> None:
    @track_usage
    def stream(question: str) -> Any:
        return mistral.chat.stream(model="mistral-small-latest", messages=[{"role": "user", "content": question}])

    events = stream(QUESTION)
    seen_before_usage: list[int] = []
    text = ""
    for event in events:
        chunk = event.data
        text += chunk.choices[0].delta.content or ""
        if chunk.usage is None:
            seen_before_usage.append(len(rows()))
        else:
            # the row exists as soon as the usage chunk has been handed over, before the stream ends
            assert rows() == [("mistral-small-latest", *ROW)]

    assert text == reply_text(QUESTION)
    assert set(seen_before_usage) == {0}
    assert rows() == [("mistral-small-latest", *ROW)]
    # the proxy keeps the stream's own attributes
    assert events.response.status_code == 200


def test_a_stream_consumed_inside_with_keeps_the_proxy(mistral: Mistral) -> None:
    @track_usage
    def stream() -> Any:
        return mistral.chat.stream(model="mistral-small-latest", messages=MESSAGES)

    with stream() as events:
        chunks = [event.data for event in events]
    assert chunks[-1].usage is not None
    assert rows() == [("mistral-small-latest", *ROW)]


def test_fim_and_agents_streams(mistral: Mistral) -> None:
    @track_usage
    def code() -> Any:
        return mistral.fim.stream(model="codestral-latest", prompt="def area(radius):", suffix="return result")

    @track_usage
    def agent() -> Any:
        return mistral.agents.stream(agent_id="ag_42", messages=MESSAGES)

    list(code())
    list(agent())

    fim_prompt = count_tokens("def area(radius): return result")
    fim_completion = count_tokens(reply_text("def area(radius):"))
    assert rows() == [
        ("codestral-latest", fim_prompt, fim_completion, fim_prompt + fim_completion),
        (AGENT_MODEL, *ROW),
    ]


def test_conversation_stream_takes_the_model_from_an_earlier_event(mistral: Mistral) -> None:
    @track_usage
    def converse() -> Any:
        return mistral.beta.conversations.start_stream(model="mistral-medium-latest", inputs=QUESTION)

    events = list(converse())

    assert type(events[-1].data).__name__ == "ResponseDoneEvent"
    assert rows() == [("mistral-medium-latest", *ROW)]


def test_a_stream_closed_halfway_writes_nothing_and_counts_in_the_session(mistral: Mistral) -> None:
    @track_usage
    def stream() -> Any:
        return mistral.chat.stream(model="mistral-small-latest", messages=MESSAGES)

    with usage_session() as session:
        events = stream()
        first = next(iter(events))
        close = getattr(events, "close", None) or (lambda: events.__exit__(None, None, None))  # 1.x: no close()
        with pytest.warns(TokenlogWarning, match="without token usage"):
            close()
        close()  # closing twice counts once

    assert first.data.choices[0].delta.role == "assistant"
    assert rows() == []
    assert session.calls == 0
    assert session.calls_without_usage == 1


def test_a_stream_abandoned_with_break_is_counted_when_collected(mistral: Mistral) -> None:
    @track_usage
    def stream() -> Any:
        return mistral.chat.stream(model="mistral-small-latest", messages=MESSAGES)

    with usage_session() as session:
        held = [stream()]
        for _ in held[0]:
            break
        with pytest.warns(TokenlogWarning, match="without token usage"):
            forget(held)
    assert session.calls_without_usage == 1
    assert rows() == []


def test_a_stream_never_iterated_is_counted_in_the_session_it_was_made_in(mistral: Mistral) -> None:
    @track_usage
    def stream() -> Any:
        return mistral.chat.stream(model="mistral-small-latest", messages=MESSAGES)

    with usage_session() as session:
        held = [stream()]
    # collected after the block: still counted where the call was made
    with pytest.warns(TokenlogWarning):
        forget(held)
    assert session.calls_without_usage == 1
    assert session.calls == 0


def test_a_stream_without_usage_warns_once_per_function(mistral: Mistral, server: MistralCompatibleServer) -> None:
    @track_usage
    def stream() -> Any:
        return mistral.chat.stream(model="mistral-small-latest", messages=MESSAGES)

    server.omit_usage = True
    with usage_session() as session:
        # the hint is mistralai's (usage comes on the last chunk), not OpenAI's stream_options
        with pytest.warns(
            TokenlogWarning, match=r"returned an? \w+ without token usage.*mistralai sends usage on the last chunk"
        ) as caught:
            list(stream())
        assert "stream_options" not in str(caught[0].message)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            list(stream())
    assert session.calls_without_usage == 2
    assert rows() == []


def test_a_stream_cut_short_raises_the_sdk_error_unchanged(mistral: Mistral, server: MistralCompatibleServer) -> None:
    @track_usage
    def stream() -> Any:
        return mistral.chat.stream(model="mistral-small-latest", messages=MESSAGES)

    server.cut_stream_after = 2
    errors = (httpx.RemoteProtocolError, httpx2.RemoteProtocolError)
    with usage_session() as session, pytest.raises(errors, match="incomplete chunked read"):
        list(stream())
    assert rows() == []
    assert session.calls_without_usage == 0, "a failed call is a failure, not a call without usage"


def test_a_stream_read_in_another_thread_records_in_the_calling_session(mistral: Mistral) -> None:
    from concurrent.futures import ThreadPoolExecutor

    @track_usage
    def stream() -> Any:
        return mistral.chat.stream(model="mistral-small-latest", messages=MESSAGES)

    sink = MemorySink()
    with usage_session("caller", sinks=[sink]) as session:
        events = stream()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(list, events).result()
    assert session.calls == 1
    assert [r.session for r in sink.records] == ["caller"]


def test_mistral_async_stream(mistral: Mistral) -> None:
    @track_usage
    async def stream(question: str) -> Any:
        return await mistral.chat.stream_async(
            model="mistral-large-latest", messages=[{"role": "user", "content": question}]
        )

    async def main() -> str:
        text = ""
        async with await stream(QUESTION) as events:
            async for event in events:
                text += event.data.choices[0].delta.content or ""
        return text

    assert asyncio.run(main()) == reply_text(QUESTION)
    assert rows() == [("mistral-large-latest", *ROW)]


def test_openai_streams_usage_on_the_last_content_chunk_or_on_an_extra_chunk(
    oai: openai.OpenAI, server: MistralCompatibleServer
) -> None:
    @track_usage
    def stream(**extra: Any) -> Any:
        return oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, **extra)  # type: ignore[call-overload]

    mistral_style = list(stream())  # usage on the chunk with finish_reason, as Mistral sends it
    openai_style = list(stream(stream_options={"include_usage": True}))  # an extra chunk with choices=[]
    server.omit_usage = True  # what OpenAI itself sends without include_usage
    with pytest.warns(TokenlogWarning, match="include_usage"):
        list(stream())

    assert mistral_style[-1].choices[0].finish_reason == "stop"
    assert openai_style[-1].choices == []
    assert rows() == [("gpt-4o-mini", *ROW)] * 2


def test_openai_async_stream_and_responses_stream(server: MistralCompatibleServer) -> None:
    @track_usage
    async def chat(client: openai.AsyncOpenAI) -> Any:
        return await client.chat.completions.create(
            model="gpt-4o",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )

    @track_usage
    def respond(client: openai.OpenAI) -> Any:
        return client.responses.create(model="gpt-4.1", input=QUESTION, stream=True)

    async def main() -> None:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0) as client:
            async for _ in await chat(client):
                pass

    asyncio.run(main())
    with openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0) as client:
        events = list(respond(client))
    assert events[-1].type == "response.completed"
    assert rows() == [("gpt-4o", *ROW), ("gpt-4.1", *ROW)]


def test_a_generator_of_sse_json_dicts() -> None:
    @track_usage
    def chunks() -> Iterator[dict[str, Any]]:
        yield {"data": {"model": "m", "choices": [{"delta": {"content": "a"}, "finish_reason": None}]}}
        yield {"data": {"model": "m", "choices": [{"delta": {"content": "b"}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}}}  # fmt: skip

    assert [c["data"]["choices"][0]["delta"]["content"] for c in chunks()] == ["a", "b"]
    assert rows() == [("m", 4, 2, 6)]


def test_running_totals_on_every_chunk_record_the_last_one_once() -> None:
    def usage(completion: int) -> dict[str, int]:
        return {"prompt_tokens": 5, "completion_tokens": completion, "total_tokens": 5 + completion}

    @track_usage
    def running() -> Iterator[dict[str, Any]]:
        for n in range(1, 4):
            yield {"model": "vllm", "choices": [{"finish_reason": None}], "usage": usage(n)}
        yield {"model": "vllm", "choices": [{"finish_reason": "stop"}], "usage": usage(4)}

    @track_usage
    def running_without_finish() -> Iterator[dict[str, Any]]:
        for n in range(1, 4):
            yield {"model": "vllm", "choices": [{"finish_reason": None}], "usage": usage(n)}

    list(running())
    list(running_without_finish())
    assert rows() == [("vllm", 5, 4, 9), ("vllm", 5, 3, 8)]


def test_an_async_generator_with_send_style_consumers() -> None:
    @track_usage(model="fallback-model")
    async def chunks() -> AsyncIterator[dict[str, Any]]:
        yield {"choices": [{"finish_reason": None}]}
        yield {"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    async def main() -> list[object]:
        agen = chunks()
        first = await agen.asend(None)
        rest = [item async for item in agen]
        return [first, *rest]

    assert len(asyncio.run(main())) == 2
    assert rows() == [("fallback-model", 1, 1, 2)]


def test_an_exception_inside_a_generator_passes_through_and_writes_nothing() -> None:
    class Boom(Exception):
        pass

    @track_usage
    def chunks() -> Iterator[dict[str, Any]]:
        yield {"choices": [{"finish_reason": None}]}
        raise Boom("mid-stream")

    generator = chunks()
    next(generator)
    with pytest.raises(Boom, match="mid-stream"):
        next(generator)
    assert rows() == []
