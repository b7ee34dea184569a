"""Instrumentation: SDK calls that nobody decorated are recorded inside sessions, exactly once, and undone exactly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import tokenlog
from tests.helpers import read_rows
from tests.sdk import MISTRAL_MAJOR, BackoffStrategy, Mistral, ResponseValidationError, RetryConfig, SDKError
from tokenlog import MemorySink, track_usage, usage_session
from tokenlog.instrumentation import TARGETS, instrumented_methods
from tokenlog.testing.server import AGENT_MODEL, MistralCompatibleServer, count_tokens, reply_text

QUESTION = "how many moons does jupiter have and which is the largest"
MESSAGES = [{"role": "user", "content": QUESTION}]
PROMPT = count_tokens(QUESTION)
COMPLETION = count_tokens(reply_text(QUESTION))
ROW = (PROMPT, COMPLETION, PROMPT + COMPLETION)
LOG = Path("mistral_usage_log.csv")
CHAT_MODULE = "mistralai.client.chat" if MISTRAL_MAJOR >= 2 else "mistralai.chat"


@pytest.fixture(autouse=True)
def _uninstrumented() -> Iterator[None]:
    tokenlog.uninstrument()
    yield
    tokenlog.uninstrument()


def rows() -> list[tuple[str, int, int, int]]:
    if not LOG.exists():
        return []
    return [
        (r["Model"], int(r["PromptTokens"]), int(r["CompletionTokens"]), int(r["TotalTokens"])) for r in read_rows(LOG)
    ]


def chat_class() -> type:
    module = __import__(CHAT_MODULE, fromlist=["Chat"])
    chat: type = module.Chat
    return chat


def test_outside_a_session_nothing_is_recorded_or_patched(mistral: Mistral) -> None:
    original = vars(chat_class())["complete"]
    mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)
    assert rows() == []
    assert vars(chat_class())["complete"] is original


def test_every_mistral_method_is_recorded_inside_a_session(mistral: Mistral) -> None:
    sink = MemorySink()
    with usage_session("undecorated", sinks=[sink]) as session:
        mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)
        list(mistral.chat.stream(model="mistral-small-latest", messages=MESSAGES))
        mistral.fim.complete(model="codestral-latest", prompt=QUESTION)
        list(mistral.fim.stream(model="codestral-latest", prompt=QUESTION))
        mistral.agents.complete(agent_id="ag_1", messages=MESSAGES)
        list(mistral.agents.stream(agent_id="ag_1", messages=MESSAGES))
        mistral.embeddings.create(model="mistral-embed", inputs=[QUESTION])
        conversations = mistral.beta.conversations
        conversations.start(model="mistral-medium-latest", inputs=QUESTION)
        conversations.append(conversation_id="conv_1", inputs=QUESTION)
        conversations.restart(conversation_id="conv_1", inputs=QUESTION, from_entry_id="msg_1")
        list(conversations.start_stream(model="mistral-medium-latest", inputs=QUESTION))
        list(conversations.append_stream(conversation_id="conv_1", inputs=QUESTION))
        list(conversations.restart_stream(conversation_id="conv_1", inputs=QUESTION, from_entry_id="msg_1"))

    assert session.calls == 13
    assert session.calls_without_usage == 0
    assert [r.function for r in sink.records] == [
        "mistralai:Chat.complete",
        "mistralai:Chat.stream",
        "mistralai:Fim.complete",
        "mistralai:Fim.stream",
        "mistralai:Agents.complete",
        "mistralai:Agents.stream",
        "mistralai:Embeddings.create",
        "mistralai:Conversations.start",
        "mistralai:Conversations.append",
        "mistralai:Conversations.restart",
        "mistralai:Conversations.start_stream",
        "mistralai:Conversations.append_stream",
        "mistralai:Conversations.restart_stream",
    ]
    assert [r.model for r in sink.records][:7] == [
        "mistral-small-latest",
        "mistral-small-latest",
        "codestral-latest",
        "codestral-latest",
        AGENT_MODEL,
        AGENT_MODEL,
        "mistral-embed",
    ]
    assert all(r.session == "undecorated" for r in sink.records)
    assert (sink.records[0].prompt_tokens, sink.records[0].completion_tokens) == ROW[:2]


def test_every_async_mistral_method_is_recorded(server: MistralCompatibleServer) -> None:
    async def main() -> tokenlog.UsageSession:
        async with Mistral(api_key="k", server_url=server.url) as client, usage_session() as session:
            await client.chat.complete_async(model="mistral-small-latest", messages=MESSAGES)
            async for _ in await client.chat.stream_async(model="mistral-small-latest", messages=MESSAGES):
                pass
            await client.fim.complete_async(model="codestral-latest", prompt=QUESTION)
            async for _ in await client.fim.stream_async(model="codestral-latest", prompt=QUESTION):
                pass
            await client.agents.complete_async(agent_id="ag_1", messages=MESSAGES)
            async for _ in await client.agents.stream_async(agent_id="ag_1", messages=MESSAGES):
                pass
            await client.embeddings.create_async(model="mistral-embed", inputs=[QUESTION])
            conversations = client.beta.conversations
            await conversations.start_async(model="m", inputs=QUESTION)
            await conversations.append_async(conversation_id="c", inputs=QUESTION)
            await conversations.restart_async(conversation_id="c", inputs=QUESTION, from_entry_id="e")
            for stream in (
                await conversations.start_stream_async(model="m", inputs=QUESTION),
                await conversations.append_stream_async(conversation_id="c", inputs=QUESTION),
                await conversations.restart_stream_async(conversation_id="c", inputs=QUESTION, from_entry_id="e"),
            ):
                async for _ in stream:
                    pass
        return session

    session = asyncio.run(main())
    assert session.calls == 13
    assert session.calls_without_usage == 0
    assert len(rows()) == 13


def test_every_openai_method_is_recorded_sync_and_async(server: MistralCompatibleServer, oai: openai.OpenAI) -> None:
    with usage_session() as session:
        oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        list(
            oai.chat.completions.create(
                model="gpt-4o-mini",
                messages=MESSAGES,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        oai.completions.create(model="gpt-3.5-turbo-instruct", prompt=QUESTION)
        oai.embeddings.create(model="text-embedding-3-small", input=[QUESTION])
        oai.responses.create(model="gpt-4.1", input=QUESTION)
        list(oai.responses.create(model="gpt-4.1", input=QUESTION, stream=True))

    async def main() -> None:
        async with (
            openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0) as client,
            usage_session() as inner,
        ):
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # type: ignore[arg-type]
            await client.completions.create(model="gpt-3.5-turbo-instruct", prompt=QUESTION)
            await client.embeddings.create(model="text-embedding-3-small", input=[QUESTION])
            await client.responses.create(model="gpt-4.1", input=QUESTION)
        assert inner.calls == 4

    asyncio.run(main())
    assert session.calls == 6
    assert [row[0] for row in rows()] == [
        "gpt-4o-mini",
        "gpt-4o-mini",
        "gpt-3.5-turbo-instruct",
        "text-embedding-3-small",
        "gpt-4.1",
        "gpt-4.1",
        "gpt-4o",
        "gpt-3.5-turbo-instruct",
        "text-embedding-3-small",
        "gpt-4.1",
    ]


def test_a_decorated_function_inside_a_session_gives_one_row_in_its_own_name(mistral: Mistral) -> None:
    decorated_sink = MemorySink()

    @track_usage(sinks=[decorated_sink], tags={"feature": "answers"})
    def answer() -> str:
        # returns only the text: the instrumented SDK call is what carries the usage
        response = mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)
        return str(response.choices[0].message.content)

    @track_usage
    def full() -> Any:
        return mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)

    session_sink = MemorySink()
    with usage_session(sinks=[session_sink]) as session, warnings.catch_warnings():
        warnings.simplefilter("error")  # no "returned without usage" for answer()
        assert answer() == reply_text(QUESTION)
        full()
        list(mistral.chat.stream(model="mistral-small-latest", messages=MESSAGES))

    assert session.calls == 3
    assert [(r.function, dict(r.tags)) for r in decorated_sink.records] == [
        (f"{__name__}.test_a_decorated_function_inside_a_session_gives_one_row_in_its_own_name.<locals>.answer",
         {"feature": "answers"}),
    ]  # fmt: skip
    functions = [r.function or "" for r in session_sink.records]
    assert functions[0].endswith(".full")
    assert functions[1] == "mistralai:Chat.stream"


def test_a_decorated_stream_inside_a_session_is_wrapped_once(mistral: Mistral) -> None:
    @track_usage
    def stream() -> Any:
        return mistral.chat.stream(model="mistral-small-latest", messages=MESSAGES)

    with usage_session() as session:
        events = stream()
        assert type(events).__name__ == "_SyncStream"
        assert type(events.__wrapped__).__name__ == "EventStream"
        list(events)
    assert session.calls == 1
    assert len(rows()) == 1


def test_sdk_errors_pass_through_unchanged_and_write_nothing(
    mistral: Mistral, oai: openai.OpenAI, server: MistralCompatibleServer
) -> None:
    with usage_session() as session:
        server.fail_next(429)
        with pytest.raises(SDKError) as raised:
            mistral.chat.complete(model="m", messages=MESSAGES)
        assert raised.value.status_code == 429
        server.fail_next(500)
        with pytest.raises(SDKError):
            mistral.chat.stream(model="m", messages=MESSAGES)
        server.fail_next(429)
        with pytest.raises(openai.RateLimitError):
            oai.chat.completions.create(model="m", messages=MESSAGES)  # type: ignore[arg-type]
        server.reset()
        server.omit_usage = True
        with pytest.raises(ResponseValidationError):
            mistral.chat.complete(model="m", messages=MESSAGES)
    assert rows() == []
    assert session.calls == 0


def test_one_row_for_a_call_the_sdk_retried(server: MistralCompatibleServer) -> None:
    retries = RetryConfig("backoff", BackoffStrategy(1, 10, 1.1, 5_000), retry_connection_errors=False)
    before = server.requests_seen
    server.fail_next(503, count=2)
    with Mistral(api_key="k", server_url=server.url, retry_config=retries) as client, usage_session() as session:
        client.chat.complete(model="mistral-small-latest", messages=MESSAGES)
    assert server.requests_seen - before == 3
    assert session.calls == 1
    assert rows() == [("mistral-small-latest", *ROW)]


def test_instrument_records_everywhere_and_uninstrument_restores_the_originals(mistral: Mistral) -> None:
    mistral.chat.complete(model="m", messages=MESSAGES)  # makes sure the module is imported
    original = vars(chat_class())["complete"]
    original_stream = vars(chat_class())["stream_async"]

    tokenlog.instrument()
    tokenlog.instrument()
    assert tokenlog.is_instrumented()
    assert vars(chat_class())["complete"] is not original
    assert f"{CHAT_MODULE}.Chat.complete" in instrumented_methods()
    mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)

    tokenlog.uninstrument()
    tokenlog.uninstrument()
    assert not tokenlog.is_instrumented()
    assert vars(chat_class())["complete"] is original
    assert vars(chat_class())["stream_async"] is original_stream
    assert instrumented_methods() == []
    mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)

    assert rows() == [("mistral-small-latest", *ROW)]


def test_a_session_can_opt_out(mistral: Mistral) -> None:
    with usage_session(instrument=False) as session:
        mistral.chat.complete(model="m", messages=MESSAGES)
    assert session.calls == 0
    assert rows() == []


def test_two_threads_with_two_sessions_never_mix(server: MistralCompatibleServer) -> None:
    results: dict[str, tokenlog.UsageSession] = {}
    barrier = threading.Barrier(2)

    def work(name: str, model: str, calls: int) -> None:
        with Mistral(api_key="k", server_url=server.url) as client, usage_session(name) as session:
            barrier.wait()
            for _ in range(calls):
                client.chat.complete(model=model, messages=MESSAGES)
        results[name] = session

    threads = [
        threading.Thread(target=work, args=("a", "model-a", 5)),
        threading.Thread(target=work, args=("b", "model-b", 7)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results["a"].calls == 5
    assert set(results["a"].by_model) == {"model-a"}
    assert results["b"].calls == 7
    assert set(results["b"].by_model) == {"model-b"}
    assert sorted(r["Model"] for r in read_rows(LOG)) == ["model-a"] * 5 + ["model-b"] * 7


def test_an_sdk_imported_after_instrument_is_patched_on_import(tmp_path: Path, server: MistralCompatibleServer) -> None:
    script = f"""
import sys
import tokenlog
tokenlog.instrument()
assert not any(name.startswith("mistralai") for name in sys.modules), "instrument() must not import SDKs"
from tests.sdk import Mistral
with Mistral(api_key="k", server_url={server.url!r}) as client:
    client.chat.complete(model="late-import", messages=[{{"role": "user", "content": "a b c"}}])
tokenlog.flush()
"""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLOG_")}
    environment["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert [r["Model"] for r in read_rows(tmp_path / "mistral_usage_log.csv")] == ["late-import"]


def test_targets_name_real_classes_of_the_installed_sdks() -> None:
    import importlib

    found = []
    for target in TARGETS:
        try:
            module = importlib.import_module(target.module)
        except ImportError:
            continue
        owner = getattr(module, target.cls, None)
        if isinstance(owner, type) and (target.only_if is None or target.only_if in vars(owner)):
            found.append(target)
            missing = [name for name in target.methods if name not in vars(owner)]
            assert missing == [], f"{target.module}.{target.cls} lacks {missing}"
    assert {t.sdk for t in found} == {"mistralai", "openai", "requests", "httpx", "threading", "concurrent.futures"}
    # mistralai: 8 classes in 2.x/3.x (chat, fim, agents, embeddings, conversations, transcriptions, OCR,
    # responses), 7 in 1.x; openai 8 (+2 beta classes before 1.92); 3 HTTP; 2 thread classes
    assert len(found) - len([t for t in found if t.sdk == "mistralai"]) in (13, 15)
    mistral = len([t for t in found if t.sdk == "mistralai"])
    assert mistral == 2 if MISTRAL_MAJOR == 0 else mistral == 8 if MISTRAL_MAJOR >= 2 else mistral >= 5
