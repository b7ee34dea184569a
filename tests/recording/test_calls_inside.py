"""What a decorated function records when it returns text: the SDK and HTTP calls made inside it.

The hackathon guide's functions return ``chat_response.choices[0].message.content`` (Method 1, the SDK)
or ``response_data['choices'][0]['message']['content']`` (Method 2, ``requests.post``): the usage is in
a call made inside, never in what comes back. Real SDKs and HTTP clients, a real server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import requests

from tests.helpers import read_rows
from tests.sdk import Mistral
from tokenlog import CsvSink, TokenlogWarning, track_usage, usage_session
from tokenlog.testing.server import MistralCompatibleServer, count_tokens, reply_text

QUESTION = "which river flows through the middle of Paris"
MESSAGES = [{"role": "user", "content": QUESTION}]
ROW = ("mistral-small-latest", count_tokens(QUESTION), count_tokens(reply_text(QUESTION)))
LOG = "mistral_usage_log.csv"


def rows() -> list[tuple[str, int, int, int, str]]:
    return [
        (r["Model"], int(r["PromptTokens"]), int(r["CompletionTokens"]), int(r["TotalTokens"]), r["Function"])
        for r in read_rows(LOG)
    ]


def expected(function: str, count: int = 1, model: str = ROW[0]) -> list[tuple[str, int, int, int, str]]:
    return [(model, ROW[1], ROW[2], ROW[1] + ROW[2], f"{__name__}.{function}")] * count


@pytest.fixture(autouse=True)
def _log_with_function_column() -> Iterator[None]:
    import tokenlog

    tokenlog.configure(sinks=[CsvSink(LOG, extra_fields=("Function",))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "returned a str without token usage" warning, nor any other
        yield


def test_the_guides_sdk_function_returning_text_records_its_call(mistral: Mistral) -> None:
    @track_usage
    def call_mistral_and_log(prompt: str) -> str:
        chat_response = mistral.chat.complete(
            model="mistral-small-latest", messages=[{"role": "user", "content": prompt}]
        )
        return chat_response.choices[0].message.content  # type: ignore[no-any-return,union-attr,index]

    assert call_mistral_and_log(QUESTION) == reply_text(QUESTION)
    assert call_mistral_and_log(QUESTION) == reply_text(QUESTION)
    assert rows() == expected(
        "test_the_guides_sdk_function_returning_text_records_its_call.<locals>.call_mistral_and_log", 2
    )


def test_an_openai_call_inside_an_async_function_returning_text(server: MistralCompatibleServer) -> None:
    @track_usage
    async def ask(prompt: str) -> str | None:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0) as client:
            reply = await client.chat.completions.create(
                model="mistral-small-latest", messages=[{"role": "user", "content": prompt}]
            )
        return reply.choices[0].message.content

    assert asyncio.run(ask(QUESTION)) == reply_text(QUESTION)
    assert rows() == expected("test_an_openai_call_inside_an_async_function_returning_text.<locals>.ask")


def test_the_guides_requests_function_records_one_row_per_successful_call(server: MistralCompatibleServer) -> None:
    url = server.url + "/v1/chat/completions"

    @track_usage
    def call_mistral_and_log(prompt: str) -> str:
        headers = {"Authorization": "Bearer test-key", "Content-Type": "application/json"}
        data = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": prompt}]}
        response = requests.post(url, headers=headers, json=data, timeout=10)
        response.raise_for_status()
        response_data = response.json()
        return response_data["choices"][0]["message"]["content"]  # type: ignore[no-any-return]

    assert call_mistral_and_log(QUESTION) == reply_text(QUESTION)
    server.fail_next(429)
    with pytest.raises(requests.HTTPError) as failed:
        call_mistral_and_log(QUESTION)
    assert failed.value.response.status_code == 429  # the user's exception, untouched
    server.fail_next(500)
    with pytest.raises(requests.HTTPError):
        call_mistral_and_log(QUESTION)
    assert call_mistral_and_log(QUESTION) == reply_text(QUESTION)
    name = "test_the_guides_requests_function_records_one_row_per_successful_call.<locals>.call_mistral_and_log"
    assert rows() == expected(name, 2)


def test_a_network_error_writes_nothing_and_passes_through() -> None:
    @track_usage
    def ask() -> str:
        return requests.post("http://127.0.0.1:9/v1/chat/completions", json={}, timeout=5).text  # nothing listens

    with pytest.raises(requests.ConnectionError):
        ask()
    assert not Path(LOG).exists()


def test_httpx_sync_and_async_inside_functions_returning_text(server: MistralCompatibleServer) -> None:
    url = server.url + "/v1/chat/completions"
    body = {"model": "mistral-small-latest", "messages": MESSAGES}

    @track_usage
    def sync() -> str:
        with httpx.Client() as client:
            return client.post(url, json=body).json()["choices"][0]["message"]["content"]  # type: ignore[no-any-return]

    @track_usage
    async def asynchronous() -> str:
        async with httpx.AsyncClient() as client:
            reply = await client.post(url, json=body)
        return reply.json()["choices"][0]["message"]["content"]  # type: ignore[no-any-return]

    assert sync() == reply_text(QUESTION)
    assert asyncio.run(asynchronous()) == reply_text(QUESTION)
    prefix = "test_httpx_sync_and_async_inside_functions_returning_text.<locals>."
    assert rows() == expected(prefix + "sync") + expected(prefix + "asynchronous")


def test_a_function_returning_the_json_of_its_request_records_it_once(server: MistralCompatibleServer) -> None:
    @track_usage
    def ask() -> Any:
        return requests.post(
            server.url + "/v1/chat/completions", json={"model": ROW[0], "messages": MESSAGES}, timeout=10
        ).json()

    with usage_session() as session:
        data = ask()
        assert session.record(data) is None  # recorded by hand as well: still the same call
    assert data["usage"]["total_tokens"] == ROW[1] + ROW[2]
    assert rows() == expected("test_a_function_returning_the_json_of_its_request_records_it_once.<locals>.ask")
    assert session.calls == 1


def test_an_sdk_call_is_not_recorded_again_by_the_http_request_it_makes(mistral: Mistral, oai: openai.OpenAI) -> None:
    with usage_session() as session:
        mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)  # type: ignore[arg-type]
        oai.chat.completions.create(model="mistral-small-latest", messages=MESSAGES)  # type: ignore[arg-type]
    assert session.calls == 2
    assert len(rows()) == 2


def test_a_streamed_http_body_is_never_read_by_tokenlog(server: MistralCompatibleServer) -> None:
    body = {"model": "mistral-small-latest", "messages": MESSAGES, "stream": True}

    @track_usage
    def stream() -> list[str]:
        with httpx.stream("POST", server.url + "/v1/chat/completions", json=body) as reply:
            assert not reply.is_stream_consumed  # tokenlog left it to the caller
            return list(reply.iter_lines())

    with pytest.warns(TokenlogWarning, match=r"stream returned a list without token usage"):
        lines = stream()  # a raw SSE body is the caller's to read: no row, and the usual warning
    assert "data: [DONE]" in lines
    assert not Path(LOG).exists()


def test_several_responses_returned_together_are_each_recorded_once(mistral: Mistral) -> None:
    def complete(model: str) -> Any:
        return mistral.chat.complete(model=model, messages=MESSAGES)  # type: ignore[arg-type]

    @track_usage
    def pair() -> tuple[Any, Any]:
        return complete("mistral-small-latest"), complete("mistral-large-latest")

    @track_usage
    def by_name() -> dict[str, Any]:
        return {"summary": complete("mistral-small-latest"), "title": complete("mistral-small-latest")}

    with usage_session(instrument=False):  # only the decorator sees the responses: each one, once
        pair()
        by_name()
    models = [r[0] for r in rows()]
    assert models == ["mistral-small-latest", "mistral-large-latest", "mistral-small-latest", "mistral-small-latest"]


def test_several_plain_responses_in_a_list_are_each_recorded() -> None:
    from tests.sdk import chat_response

    @track_usage
    def batch() -> list[dict[str, object]]:
        return [chat_response(10, 5), chat_response(20, 7), chat_response(1, 1)]

    batch()
    assert [r[1:4] for r in rows()] == [(10, 5, 15), (20, 7, 27), (1, 1, 2)]


def test_calls_made_in_threads_a_decorated_call_starts_count_for_it(mistral: Mistral) -> None:
    def complete() -> str:
        reply = mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)  # type: ignore[arg-type]
        return reply.choices[0].message.content  # type: ignore[no-any-return,union-attr,index]

    @track_usage
    def fan_out() -> list[str]:
        with ThreadPoolExecutor(max_workers=3) as pool:
            answers = list(pool.map(lambda _: complete(), range(3)))
        thread = threading.Thread(target=complete)
        thread.start()
        thread.join()
        return answers

    assert fan_out() == [reply_text(QUESTION)] * 3
    assert rows() == expected("test_calls_made_in_threads_a_decorated_call_starts_count_for_it.<locals>.fan_out", 4)
