"""Real SDKs (mistralai 3.x, openai, requests, httpx) over HTTP to the local server: the rows tokenlog writes."""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path

import httpx
import openai
import pytest
import requests

import tokenlog
from tests.helpers import read_rows
from tests.sdk import Mistral, ResponseValidationError, SDKError
from tokenlog import CsvSink, TokenlogWarning, track_usage, usage_session
from tokenlog.testing.server import MistralCompatibleServer, count_tokens, reply_text

QUESTION = "which river flows through the middle of Paris"
MESSAGES = [{"role": "user", "content": QUESTION}]
PROMPT = count_tokens(QUESTION)
COMPLETION = count_tokens(reply_text(QUESTION))
LOG = "mistral_usage_log.csv"


def counts(row: dict[str, str]) -> tuple[str, int, int, int]:
    return row["Model"], int(row["PromptTokens"]), int(row["CompletionTokens"]), int(row["TotalTokens"])


def test_mistral_chat_complete_writes_one_row_with_the_servers_counts(mistral: Mistral) -> None:
    @track_usage
    def ask(question: str) -> object:
        return mistral.chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": question}])

    response = ask(QUESTION)

    assert response.choices[0].message.content == reply_text(QUESTION)  # type: ignore[attr-defined]
    rows = read_rows(LOG)
    assert [counts(row) for row in rows] == [("mistral-small-latest", PROMPT, COMPLETION, PROMPT + COMPLETION)]
    assert list(rows[0]) == ["TimestampUTC", "Model", "PromptTokens", "CompletionTokens", "TotalTokens"]
    assert rows[0]["TimestampUTC"].endswith("+00:00")


def test_mistral_chat_complete_async_in_an_async_function(mistral: Mistral) -> None:
    sink = CsvSink(LOG, extra_fields=("Function", "RequestId", "LatencyMs"))

    @track_usage(sink=sink)
    async def ask(question: str) -> object:
        return await mistral.chat.complete_async(
            model="mistral-large-latest", messages=[{"role": "user", "content": question}]
        )

    async def main() -> list[object]:
        return list(await asyncio.gather(ask(QUESTION), ask(QUESTION + " today")))

    responses = asyncio.run(main())

    rows = read_rows(LOG)
    assert sorted(counts(row) for row in rows) == sorted(
        [
            ("mistral-large-latest", PROMPT, COMPLETION, PROMPT + COMPLETION),
            (
                "mistral-large-latest",
                PROMPT + 1,
                count_tokens(reply_text(QUESTION + " today")),
                PROMPT + 1 + count_tokens(reply_text(QUESTION + " today")),
            ),
        ]
    )
    assert {row["RequestId"] for row in rows} == {response.id for response in responses}  # type: ignore[attr-defined]
    assert all(row["Function"].endswith("ask") for row in rows)
    assert all(float(row["LatencyMs"]) > 0 for row in rows)


def test_mistral_fim_complete(mistral: Mistral) -> None:
    @track_usage
    def complete(prompt: str, suffix: str) -> object:
        return mistral.fim.complete(model="codestral-latest", prompt=prompt, suffix=suffix)

    complete("def add(a, b):", "return total")

    reply = reply_text("def add(a, b):")
    prompt = count_tokens("def add(a, b): return total")
    assert [counts(row) for row in read_rows(LOG)] == [
        ("codestral-latest", prompt, count_tokens(reply), prompt + count_tokens(reply))
    ]


def test_mistral_embeddings_create_has_zero_completion_tokens(mistral: Mistral) -> None:
    @track_usage
    def embed(texts: list[str]) -> object:
        return mistral.embeddings.create(model="mistral-embed", inputs=texts)

    embed(["one two three", "four five"])

    assert [counts(row) for row in read_rows(LOG)] == [("mistral-embed", 5, 0, 5)]


def test_a_decorated_method_that_returns_a_tuple(mistral: Mistral) -> None:
    class Assistant:
        def __init__(self, client: Mistral) -> None:
            self.client = client

        @track_usage(model="fallback-unused")
        def answer(self, question: str) -> tuple[str, object]:
            response = self.client.chat.complete(
                model="ministral-8b-latest", messages=[{"role": "user", "content": question}]
            )
            return str(response.choices[0].message.content), response

    text, _ = Assistant(mistral).answer(QUESTION)

    assert text == reply_text(QUESTION)
    assert [counts(row) for row in read_rows(LOG)] == [("ministral-8b-latest", PROMPT, COMPLETION, PROMPT + COMPLETION)]


def test_a_failed_mistral_call_writes_nothing_and_raises_the_sdk_error(
    mistral: Mistral, server: MistralCompatibleServer
) -> None:
    @track_usage
    def ask() -> object:
        return mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)

    server.fail_next(500)
    with pytest.raises(SDKError) as raised:
        ask()

    assert raised.value.status_code == 500
    assert raised.traceback[-1].name != "wrapper", "the SDK's own frame must be last in the traceback"
    assert not Path(LOG).exists()


def test_a_response_the_sdk_cannot_validate_passes_through_without_a_row(
    mistral: Mistral, server: MistralCompatibleServer
) -> None:
    @track_usage
    def ask() -> object:
        return mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)

    server.omit_usage = True
    with pytest.raises(ResponseValidationError):
        ask()
    assert not Path(LOG).exists()


def test_openai_chat_completions_embeddings_and_responses(oai: openai.OpenAI) -> None:
    @track_usage
    def chat() -> object:
        return oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]

    @track_usage
    def legacy() -> object:
        return oai.completions.create(model="gpt-3.5-turbo-instruct", prompt=QUESTION)

    @track_usage
    def embed() -> object:
        return oai.embeddings.create(model="text-embedding-3-small", input=["a b c"])

    @track_usage
    def respond() -> object:
        return oai.responses.create(model="gpt-4.1", input=QUESTION)

    chat()
    legacy()
    embed()
    respond()

    assert [counts(row) for row in read_rows(LOG)] == [
        ("gpt-4o-mini", PROMPT, COMPLETION, PROMPT + COMPLETION),
        ("gpt-3.5-turbo-instruct", PROMPT, COMPLETION, PROMPT + COMPLETION),
        ("text-embedding-3-small", 3, 0, 3),
        ("gpt-4.1", PROMPT, COMPLETION, PROMPT + COMPLETION),
    ]


def test_openai_response_without_usage_warns_once_and_writes_nothing(
    oai: openai.OpenAI, server: MistralCompatibleServer
) -> None:
    @track_usage
    def chat() -> object:
        return oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]

    server.omit_usage = True
    with pytest.warns(TokenlogWarning, match="without token usage"):
        first = chat()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chat()

    assert first.choices[0].message.content == reply_text(QUESTION)  # type: ignore[attr-defined]
    assert not Path(LOG).exists()


def test_requests_and_httpx_responses_and_their_json(server: MistralCompatibleServer) -> None:
    url = server.url + "/v1/chat/completions"
    body = {"model": "open-mistral-nemo", "messages": MESSAGES}

    @track_usage
    def with_requests() -> requests.Response:
        return requests.post(url, json=body, timeout=10)

    @track_usage
    def with_requests_json() -> object:
        return requests.post(url, json=body, timeout=10).json()

    @track_usage
    def with_httpx() -> httpx.Response:
        return httpx.post(url, json=body, timeout=10)

    with usage_session("raw-http") as session:
        with_requests()
        with_requests_json()
        with_httpx()
        session.record(requests.post(url, json=body, timeout=10).json())

    row = ("open-mistral-nemo", PROMPT, COMPLETION, PROMPT + COMPLETION)
    assert [counts(r) for r in read_rows(LOG)] == [row] * 4
    assert session.calls == 4
    assert session.total_tokens == 4 * (PROMPT + COMPLETION)


def test_a_streamed_requests_body_is_never_read(server: MistralCompatibleServer) -> None:
    @track_usage
    def post() -> requests.Response:
        return requests.post(
            server.url + "/v1/chat/completions",
            json={"model": "m", "messages": MESSAGES},
            stream=True,
            timeout=10,
        )

    with pytest.warns(TokenlogWarning, match="without token usage"):
        response = post()
    # The caller still gets the whole body: tokenlog did not consume it.
    assert response.json()["usage"]["prompt_tokens"] == PROMPT
    assert not Path(LOG).exists()


def test_a_session_totals_real_sdk_calls_by_model(mistral: Mistral, oai: openai.OpenAI, tmp_path: Path) -> None:
    @track_usage
    def small() -> object:
        return mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)

    @track_usage
    def large() -> object:
        return oai.chat.completions.create(model="mistral-large-latest", messages=MESSAGES)  # type: ignore[arg-type]

    session_log = tmp_path / "session.csv"
    with usage_session("evaluation", sinks=[session_log]) as session:
        small()
        small()
        large()

    per_call = PROMPT + COMPLETION
    assert session.calls == 3
    assert session.total_tokens == 3 * per_call
    assert session.by_model["mistral-small-latest"].calls == 2
    assert session.by_model["mistral-large-latest"].total_tokens == per_call
    assert len(read_rows(session_log)) == 3
    assert not Path(LOG).exists(), "a session with its own sinks keeps its rows out of the default log"
    tokenlog.flush()
