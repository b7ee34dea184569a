"""mistralai 0.x (MistralClient / MistralAsyncClient), instrumented inside a session; runs where 0.x is installed.

CI installs mistralai 0.4.2 in a separate virtualenv for this file (see ``.ci/run``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.sdk import MISTRAL_MAJOR
from tokenlog import MemorySink, usage_session
from tokenlog.testing.server import MistralCompatibleServer, count_tokens, reply_text

pytestmark = pytest.mark.skipif(MISTRAL_MAJOR != 0, reason="needs mistralai 0.x (CI runs it in its own venv)")

QUESTION = "name the planets of the solar system in order"


def test_mistralai_0x_sync_and_async_methods_are_recorded_once_each(server: MistralCompatibleServer) -> None:
    from mistralai.async_client import MistralAsyncClient  # type: ignore[import-not-found,unused-ignore]
    from mistralai.client import MistralClient  # type: ignore[attr-defined,unused-ignore]
    from mistralai.models.chat_completion import ChatMessage  # type: ignore[import-not-found,unused-ignore]

    messages = [ChatMessage(role="user", content=QUESTION)]
    sink = MemorySink()

    async def run_async() -> None:
        client = MistralAsyncClient(api_key="k", endpoint=server.url, max_retries=0)
        await client.chat(model="mistral-tiny", messages=messages)
        async for _ in client.chat_stream(model="mistral-tiny", messages=messages):
            pass
        await client.embeddings(model="mistral-embed", input=["a b"])
        await client.close()

    with usage_session("v0", sinks=[sink]) as session:
        client: Any = MistralClient(api_key="k", endpoint=server.url, max_retries=0)
        client.chat(model="mistral-tiny", messages=messages)
        list(client.chat_stream(model="mistral-tiny", messages=messages))
        client.embeddings(model="mistral-embed", input=["a b"])
        asyncio.run(run_async())

    chat = ("mistral-tiny", count_tokens(QUESTION), count_tokens(reply_text(QUESTION)))
    embed = ("mistral-embed", 2, 0)
    assert [(r.function, r.model, r.prompt_tokens, r.completion_tokens) for r in sink.records] == [
        ("mistralai:MistralClient.chat", *chat),
        ("mistralai:MistralClient.chat_stream", *chat),
        ("mistralai:MistralClient.embeddings", *embed),
        ("mistralai:MistralAsyncClient.chat", *chat),
        ("mistralai:MistralAsyncClient.chat_stream", *chat),
        ("mistralai:MistralAsyncClient.embeddings", *embed),
    ]
    assert session.calls_without_usage == 0


def test_mistralai_0x_calls_are_refused_by_a_spent_budget_before_their_request(server: MistralCompatibleServer) -> None:
    from mistralai.client import MistralClient  # type: ignore[attr-defined,unused-ignore]
    from mistralai.models.chat_completion import ChatMessage  # type: ignore[import-not-found,unused-ignore]

    import tokenlog

    messages = [ChatMessage(role="user", content=QUESTION)]
    client: Any = MistralClient(api_key="k", endpoint=server.url, max_retries=0)
    budget = tokenlog.Budget(max_cost_usd=5, max_calls=1, warn_at=None)
    with usage_session(sinks=[], budget=budget):
        with pytest.raises(tokenlog.BudgetExceeded, match="'my-finetune'"):
            client.chat("my-finetune", messages)  # the model given positionally: still known before the request
        before = server.requests_seen
        client.chat(model="mistral-small-latest", messages=messages)
        with pytest.raises(tokenlog.BudgetExceeded, match="max_calls=1"):
            client.chat(model="mistral-small-latest", messages=messages)
        assert server.requests_seen == before + 1
