"""The local Mistral/OpenAI-compatible server answers in shapes the real SDKs parse, with exact usage."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import httpx2
import openai
import pytest
import requests
from mistralai.client import Mistral
from mistralai.client.errors import ResponseValidationError, SDKError
from mistralai.client.models import ResponseDoneEvent, UnknownConversationEventsData

from tokenlog.testing.server import (
    AGENT_MODEL,
    EMBEDDING,
    REPLY_WORDS,
    MistralCompatibleServer,
    count_tokens,
    reply_text,
)

QUESTION = "what is the capital of France and why is it so very famous today"
MESSAGES = [
    {"role": "system", "content": "answer briefly"},
    {"role": "user", "content": QUESTION},
]
PROMPT_TOKENS = count_tokens("answer briefly " + QUESTION)
REPLY = reply_text(QUESTION)
COMPLETION_TOKENS = count_tokens(REPLY)
USAGE = {
    "prompt_tokens": PROMPT_TOKENS,
    "completion_tokens": COMPLETION_TOKENS,
    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
}


def usage_of(usage: Any) -> dict[str, int]:
    return {name: getattr(usage, name) for name in ("prompt_tokens", "completion_tokens", "total_tokens")}


def drain(stream: Iterable[Any], into: list[Any]) -> None:
    """Append what a stream yields to `into`, so a test still sees what came before an error."""
    into.extend(stream)


def raw_sse(server: MistralCompatibleServer, path: str, body: dict[str, Any]) -> list[Any]:
    """The decoded `data:` payloads of a streamed answer, read with plain requests."""
    with requests.post(server.url + path, json={**body, "stream": True}, stream=True, timeout=5) as response:
        lines = [line for line in response.iter_lines(decode_unicode=True) if line.startswith("data: ")]
    return [line[6:] if line == "data: [DONE]" else json.loads(line[6:]) for line in lines]


# --- deterministic counting ----------------------------------------------------------------------


def test_count_tokens_counts_whitespace_separated_words() -> None:
    assert count_tokens("one two  three\nfour") == 4
    assert count_tokens("") == 0
    assert count_tokens("   ") == 1


def test_reply_echoes_the_first_eight_words() -> None:
    words = [f"w{i}" for i in range(20)]
    assert reply_text(" ".join(words)) == "echo: " + " ".join(words[:REPLY_WORDS])
    assert reply_text("") == "echo:"


# --- mistralai 3.x --------------------------------------------------------------------------------


def test_mistral_chat_complete_reports_the_computed_usage(mistral: Mistral) -> None:
    answer = mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)
    assert answer.model == "mistral-small-latest"
    assert answer.object == "chat.completion"
    assert answer.choices[0].message is not None
    assert answer.choices[0].message.content == REPLY
    assert answer.choices[0].finish_reason == "stop"
    assert usage_of(answer.usage) == USAGE


def test_mistral_chat_counts_the_text_parts_of_list_contents(mistral: Mistral) -> None:
    content = [{"type": "text", "text": "two words"}, {"type": "text", "text": "and three more"}]
    answer = mistral.chat.complete(model="m", messages=[{"role": "user", "content": content}])
    assert answer.usage.prompt_tokens == 5
    assert answer.choices[0].message is not None
    assert answer.choices[0].message.content == "echo: two words and three more"


def test_mistral_chat_complete_async_reports_the_computed_usage(server: MistralCompatibleServer) -> None:
    async def ask() -> Any:
        async with Mistral(api_key="k", server_url=server.url) as client:
            first = await client.chat.complete_async(model="m", messages=MESSAGES)
            second = await client.chat.complete_async(model="m", messages=MESSAGES)
            return first, second

    first, second = asyncio.run(ask())
    assert usage_of(first.usage) == usage_of(second.usage) == USAGE
    assert first.id != second.id


def test_mistral_chat_stream_carries_usage_on_the_last_chunk_only(mistral: Mistral) -> None:
    chunks = [event.data for event in mistral.chat.stream(model="mistral-small-latest", messages=MESSAGES)]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert "".join(str(chunk.choices[0].delta.content) for chunk in chunks) == REPLY
    assert len(chunks) == 1 + COMPLETION_TOKENS
    assert [chunk.usage for chunk in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert usage_of(chunks[-1].usage) == USAGE
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert {chunk.model for chunk in chunks} == {"mistral-small-latest"}


def test_mistral_stream_ends_with_done_on_the_wire(server: MistralCompatibleServer) -> None:
    payloads = raw_sse(server, "/v1/chat/completions", {"model": "m", "messages": MESSAGES})
    assert payloads[-1] == "[DONE]"
    assert payloads[-2]["usage"] == USAGE
    assert all("usage" not in payload for payload in payloads[:-2])


def test_mistral_chat_stream_async_carries_usage_on_the_last_chunk_only(server: MistralCompatibleServer) -> None:
    async def collect() -> list[Any]:
        async with Mistral(api_key="k", server_url=server.url) as client:
            stream = await client.chat.stream_async(model="m", messages=MESSAGES)
            return [event.data async for event in stream]

    chunks = asyncio.run(collect())
    assert [chunk.usage is None for chunk in chunks] == [True] * (len(chunks) - 1) + [False]
    assert usage_of(chunks[-1].usage) == USAGE


def test_mistral_fim_complete_counts_prompt_and_suffix(mistral: Mistral) -> None:
    answer = mistral.fim.complete(model="codestral-latest", prompt="def add(a, b):", suffix="return total")
    assert answer.model == "codestral-latest"
    assert answer.choices[0].message is not None
    assert answer.choices[0].message.content == "echo: def add(a, b):"
    assert usage_of(answer.usage) == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}


def test_mistral_fim_stream_carries_usage_on_the_last_chunk(mistral: Mistral) -> None:
    chunks = [event.data for event in mistral.fim.stream(model="codestral-latest", prompt="x = 1", suffix="y")]
    assert [chunk.usage is None for chunk in chunks[:-1]] == [True] * (len(chunks) - 1)
    assert usage_of(chunks[-1].usage) == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}


def test_mistral_embeddings_count_every_input(mistral: Mistral) -> None:
    answer = mistral.embeddings.create(model="mistral-embed", inputs=["three small words", "two words"])
    assert answer.model == "mistral-embed"
    assert [item.embedding for item in answer.data] == [list(EMBEDDING)] * 2
    assert [item.index for item in answer.data] == [0, 1]
    assert usage_of(answer.usage) == {"prompt_tokens": 5, "completion_tokens": 0, "total_tokens": 5}


def test_mistral_agents_complete_reports_the_agent_model(mistral: Mistral) -> None:
    answer = mistral.agents.complete(agent_id="ag_0123", messages=MESSAGES)
    assert answer.model == AGENT_MODEL
    assert usage_of(answer.usage) == USAGE


def test_mistral_agents_stream_carries_usage_on_the_last_chunk(mistral: Mistral) -> None:
    chunks = [event.data for event in mistral.agents.stream(agent_id="ag_0123", messages=MESSAGES)]
    assert usage_of(chunks[-1].usage) == USAGE


def test_mistral_conversation_start_reports_conversation_usage(mistral: Mistral) -> None:
    answer = mistral.beta.conversations.start(model="mistral-medium-latest", inputs=QUESTION)
    assert answer.conversation_id.startswith("conv_")
    output = answer.outputs[0]
    assert output.type == "message.output"
    assert output.content == REPLY
    assert output.model == "mistral-medium-latest"
    question_tokens = count_tokens(QUESTION)
    expected = {"prompt_tokens": question_tokens, "completion_tokens": COMPLETION_TOKENS}
    assert usage_of(answer.usage) == {**expected, "total_tokens": question_tokens + COMPLETION_TOKENS}


def test_mistral_conversation_stream_ends_with_usage_on_response_done(mistral: Mistral) -> None:
    events = list(mistral.beta.conversations.start_stream(model="m", inputs="hello there"))
    assert [event.event for event in events] == [
        "conversation.response.started",
        "message.output.delta",
        "message.output.delta",
        "message.output.delta",
        "conversation.response.done",
    ]
    assert "".join(str(getattr(event.data, "content", "")) for event in events) == "echo: hello there"
    assert isinstance(events[-1].data, ResponseDoneEvent)
    assert usage_of(events[-1].data.usage) == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


# --- openai ---------------------------------------------------------------------------------------


def test_openai_chat_completion_parses(oai: openai.OpenAI) -> None:
    answer = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert answer.model == "gpt-4o-mini"
    assert answer.choices[0].message.content == REPLY
    assert answer.choices[0].message.tool_calls is None
    assert answer.usage is not None
    assert usage_of(answer.usage) == USAGE


def test_openai_stream_with_include_usage_puts_usage_on_a_final_choiceless_chunk(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert usage_of(chunks[-1].usage) == USAGE
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks[:-1]) == REPLY


def test_openai_async_stream_with_include_usage_ends_with_usage(server: MistralCompatibleServer) -> None:
    async def collect() -> list[Any]:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(collect())
    assert chunks[-1].usage is not None
    assert usage_of(chunks[-1].usage) == USAGE


def test_openai_stream_without_include_usage_gets_mistral_style_usage(oai: openai.OpenAI) -> None:
    chunks = list(oai.chat.completions.create(model="m", messages=MESSAGES, stream=True))
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert usage_of(chunks[-1].usage) == USAGE


def test_openai_legacy_completion_parses(oai: openai.OpenAI) -> None:
    answer = oai.completions.create(model="babbage", prompt="complete this line")
    assert answer.object == "text_completion"
    assert answer.choices[0].text == "echo: complete this line"
    assert answer.usage is not None
    assert usage_of(answer.usage) == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_openai_embeddings_default_to_base64_that_decodes_to_the_vector(oai: openai.OpenAI) -> None:
    raw = oai.embeddings.with_raw_response.create(model="text-embedding-3-small", input="one two three")
    wire = json.loads(raw.text)["data"][0]["embedding"]
    assert isinstance(wire, str)
    assert struct.unpack("<8f", base64.b64decode(wire)) == EMBEDDING
    answer = raw.parse()
    assert answer.data[0].embedding == list(EMBEDDING)
    assert answer.usage.prompt_tokens == answer.usage.total_tokens == 3


def test_openai_embeddings_as_floats(oai: openai.OpenAI) -> None:
    answer = oai.embeddings.create(model="e", input=["a b", "c"], encoding_format="float")
    assert [item.embedding for item in answer.data] == [list(EMBEDDING)] * 2
    assert answer.usage.prompt_tokens == 3


def test_openai_responses_create_parses(oai: openai.OpenAI) -> None:
    answer = oai.responses.create(model="gpt-4.1", input="say something nice", instructions="be kind")
    assert answer.status == "completed"
    assert answer.output_text == "echo: say something nice"
    assert answer.usage is not None
    assert (answer.usage.input_tokens, answer.usage.output_tokens, answer.usage.total_tokens) == (5, 4, 9)
    assert answer.usage.input_tokens_details.cached_tokens == 0
    assert answer.usage.output_tokens_details.reasoning_tokens == 0


def test_openai_responses_stream_ends_with_completed_and_usage(oai: openai.OpenAI) -> None:
    events = list(oai.responses.create(model="gpt-4.1", input="hi there", stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == "echo: hi there"
    assert events[-1].response.usage is not None
    assert events[-1].response.usage.total_tokens == 5


# --- plain HTTP -----------------------------------------------------------------------------------


def test_requests_post_gets_plain_json(server: MistralCompatibleServer) -> None:
    response = requests.post(server.url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES}, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["usage"] == USAGE
    assert body["choices"][0]["message"] == {"role": "assistant", "content": REPLY, "tool_calls": None}
    assert isinstance(body["created"], int)


def test_unknown_path_answers_404_json(server: MistralCompatibleServer) -> None:
    response = requests.post(server.url + "/v1/nowhere", json={}, timeout=5)
    assert response.status_code == 404
    assert response.json()["object"] == "error"


def test_malformed_json_answers_400_json(server: MistralCompatibleServer) -> None:
    response = requests.post(server.url + "/v1/chat/completions", data=b"{not json", timeout=5)
    assert response.status_code == 400
    assert response.json()["type"] == "invalid_request_error"


def test_response_ids_are_unique(server: MistralCompatibleServer) -> None:
    ids = {
        requests.post(server.url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES}, timeout=5).json()[
            "id"
        ]
        for _ in range(5)
    }
    assert len(ids) == 5


# --- faults ---------------------------------------------------------------------------------------


def test_fail_next_429_raises_mistral_sdkerror_with_retry_after(
    server: MistralCompatibleServer, mistral: Mistral
) -> None:
    server.fail_next(429, retry_after=3)
    before = server.requests_seen
    with pytest.raises(SDKError) as raised:
        mistral.chat.complete(model="m", messages=MESSAGES)
    assert raised.value.status_code == 429
    assert raised.value.raw_response.headers["Retry-After"] == "3"
    body = json.loads(raised.value.body)
    assert (body["object"], body["type"], body["code"]) == ("error", "rate_limited", "429")
    assert mistral.chat.complete(model="m", messages=MESSAGES).usage.total_tokens == USAGE["total_tokens"]
    assert server.requests_seen - before == 2


def test_fail_next_429_raises_openai_rate_limit_error(server: MistralCompatibleServer, oai: openai.OpenAI) -> None:
    server.fail_next(429)
    with pytest.raises(openai.RateLimitError) as raised:
        oai.chat.completions.create(model="m", messages=MESSAGES)
    assert raised.value.status_code == 429


def test_fail_next_fails_exactly_count_requests(server: MistralCompatibleServer, oai: openai.OpenAI) -> None:
    server.fail_next(500, count=2)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            oai.chat.completions.create(model="m", messages=MESSAGES)
    assert oai.chat.completions.create(model="m", messages=MESSAGES).usage is not None


def test_fail_next_applies_to_streams(mistral: Mistral, server: MistralCompatibleServer) -> None:
    server.fail_next(503)
    with pytest.raises(SDKError) as raised:
        mistral.chat.stream(model="m", messages=MESSAGES)
    assert raised.value.status_code == 503


def test_openai_retries_a_429_after_retry_after(server: MistralCompatibleServer) -> None:
    server.fail_next(429, retry_after=0.01)
    before = server.requests_seen
    with openai.OpenAI(base_url=server.url + "/v1", api_key="k", max_retries=1) as client:
        answer = client.chat.completions.create(model="m", messages=MESSAGES)
    assert answer.usage is not None
    assert server.requests_seen - before == 2


def test_omitted_usage_makes_mistral_complete_raise_response_validation_error(
    server: MistralCompatibleServer, mistral: Mistral
) -> None:
    server.omit_usage = True
    with pytest.raises(ResponseValidationError, match=r"usage\s+Field required"):
        mistral.chat.complete(model="m", messages=MESSAGES)
    raw = requests.post(server.url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES}, timeout=5)
    assert "usage" not in raw.json()


def test_null_usage_makes_mistral_complete_raise_response_validation_error(
    server: MistralCompatibleServer, mistral: Mistral
) -> None:
    server.null_usage = True
    with pytest.raises(ResponseValidationError, match="valid dictionary or instance of UsageInfo"):
        mistral.chat.complete(model="m", messages=MESSAGES)


def test_missing_or_null_usage_gives_openai_usage_none(server: MistralCompatibleServer, oai: openai.OpenAI) -> None:
    server.omit_usage = True
    assert oai.chat.completions.create(model="m", messages=MESSAGES).usage is None
    server.reset()
    server.null_usage = True
    assert oai.chat.completions.create(model="m", messages=MESSAGES).usage is None


def test_omitted_usage_leaves_every_stream_chunk_without_usage(
    server: MistralCompatibleServer, mistral: Mistral, oai: openai.OpenAI
) -> None:
    server.omit_usage = True
    mistral_chunks = [event.data for event in mistral.chat.stream(model="m", messages=MESSAGES)]
    assert mistral_chunks[-1].choices[0].finish_reason == "stop"
    assert all(chunk.usage is None for chunk in mistral_chunks)
    openai_chunks = list(
        oai.chat.completions.create(
            model="m",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(chunk.choices for chunk in openai_chunks)  # no usage-only chunk at all
    assert all(chunk.usage is None for chunk in openai_chunks)
    payloads = raw_sse(server, "/v1/chat/completions", {"model": "m", "messages": MESSAGES})
    assert all("usage" not in payload for payload in payloads[:-1])


def test_null_usage_stream_sends_usage_null_on_the_finishing_chunk(
    server: MistralCompatibleServer, mistral: Mistral
) -> None:
    server.null_usage = True
    payloads = raw_sse(server, "/v1/chat/completions", {"model": "m", "messages": MESSAGES})
    assert payloads[-2]["usage"] is None
    assert payloads[-2]["choices"][0]["finish_reason"] == "stop"
    assert all(event.data.usage is None for event in mistral.chat.stream(model="m", messages=MESSAGES))


def test_missing_usage_turns_the_conversation_done_event_into_an_unknown_event(
    server: MistralCompatibleServer, mistral: Mistral
) -> None:
    server.omit_usage = True
    with pytest.raises(ResponseValidationError):
        mistral.beta.conversations.start(model="m", inputs="hi")
    events = list(mistral.beta.conversations.start_stream(model="m", inputs="hi"))
    # The SDK does not raise: a done event it cannot validate becomes an "unknown" event.
    assert events[-1].event == "conversation.response.done"
    assert isinstance(events[-1].data, UnknownConversationEventsData)


def test_cut_stream_makes_mistral_stream_raise_remote_protocol_error(
    server: MistralCompatibleServer, mistral: Mistral
) -> None:
    server.cut_stream_after = 3
    received: list[Any] = []
    with pytest.raises(httpx2.RemoteProtocolError, match="incomplete chunked read"):
        drain(mistral.chat.stream(model="m", messages=MESSAGES), received)
    assert len(received) == 3
    assert all(event.data.usage is None for event in received)
    assert mistral.chat.complete(model="m", messages=MESSAGES).usage.total_tokens == USAGE["total_tokens"]


def test_cut_stream_makes_mistral_stream_async_raise_remote_protocol_error(server: MistralCompatibleServer) -> None:
    server.cut_stream_after = 2

    async def collect(received: list[Any]) -> None:
        async with Mistral(api_key="k", server_url=server.url) as client:
            async for event in await client.chat.stream_async(model="m", messages=MESSAGES):
                received.append(event.data)

    received: list[Any] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        asyncio.run(collect(received))
    assert len(received) == 2


def test_cut_stream_makes_openai_stream_raise_api_connection_error(
    server: MistralCompatibleServer, oai: openai.OpenAI
) -> None:
    server.cut_stream_after = 4
    received: list[Any] = []
    with pytest.raises(openai.APIConnectionError) as raised:
        drain(oai.chat.completions.create(model="m", messages=MESSAGES, stream=True), received)
    assert isinstance(raised.value.__cause__, httpx2.RemoteProtocolError)
    assert len(received) == 4


def test_reset_clears_every_fault(server: MistralCompatibleServer, mistral: Mistral) -> None:
    server.fail_next(500, count=5)
    server.omit_usage = server.null_usage = True
    server.cut_stream_after = 1
    server.reset()
    assert mistral.chat.complete(model="m", messages=MESSAGES).usage.total_tokens == USAGE["total_tokens"]
    assert usage_of(list(mistral.chat.stream(model="m", messages=MESSAGES))[-1].data.usage) == USAGE


# --- serving ----------------------------------------------------------------------------------------


def test_concurrent_requests_are_all_served_and_counted(server: MistralCompatibleServer) -> None:
    before = server.requests_seen
    body = {"model": "m", "messages": MESSAGES}

    def post(_: int) -> int:
        return requests.post(server.url + "/v1/chat/completions", json=body, timeout=5).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(post, range(16)))
    assert statuses == [200] * 16
    assert server.requests_seen - before == 16


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_answer_leaves_in_one_send_so_no_request_waits_for_a_delayed_ack(
    server: MistralCompatibleServer, stream: bool
) -> None:
    """Headers then body in two sends, with Nagle on, hold the body ~40 ms for the client's delayed ACK, on every
    request (the demo took twice as long). Sent at once, the first read of the answer holds its headers and its
    body (a stream: its first event), whatever the machine's speed."""
    body = json.dumps({"model": "m", "messages": MESSAGES, "stream": stream}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), timeout=5) as client:
        for _ in range(3):  # keep-alive: the second and third answers too
            client.sendall(request)
            first = client.recv(1 << 20)
            head, _, rest = first.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), first
            if stream:
                assert b"\r\ndata: {" in rest, first  # the first event (a chunk) came with the headers
                while not first.endswith(b"\r\n0\r\n\r\n"):  # read the rest of the stream, to its last chunk
                    first += client.recv(1 << 20)
            else:
                length = int(
                    next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(
                        b":"
                    )[1]
                )
                assert len(rest) == length, first  # the whole body came with the headers
                assert json.loads(rest)["usage"]["total_tokens"] > 0


def test_a_slow_stream_reader_does_not_block_other_requests(server: MistralCompatibleServer) -> None:
    with requests.post(
        server.url + "/v1/chat/completions",
        json={"model": "m", "messages": MESSAGES, "stream": True},
        stream=True,
        timeout=5,
    ) as streaming:
        first = next(streaming.iter_lines())
        other = requests.post(server.url + "/v1/embeddings", json={"model": "e", "input": "a"}, timeout=5)
        assert other.status_code == 200
        assert first.startswith(b"data: ")


def test_stop_returns_promptly_and_frees_the_port_despite_keep_alive_clients() -> None:
    started = MistralCompatibleServer().start()
    port = int(started.url.rsplit(":", 1)[1])
    with httpx.Client() as keep_alive:
        answered = keep_alive.post(started.url + "/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
        assert answered.status_code == 200
        began = time.monotonic()
        started.stop()
        assert time.monotonic() - began < 1.0
    with pytest.raises(RuntimeError):
        _ = started.url
    with MistralCompatibleServer(port=port) as again:
        assert again.url == f"http://127.0.0.1:{port}"
        assert requests.post(again.url + "/v1/embeddings", json={"model": "e", "input": "a"}, timeout=5).ok
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
