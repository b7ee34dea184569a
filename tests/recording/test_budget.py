"""Budgets in one process: refused before the request (counted on the server), the crossing call returns, nested
budgets each hold, unpriced calls under a cost cap, one warning, and the overshoot bound under threads and asyncio."""

from __future__ import annotations

import asyncio
import os
import pickle
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import httpx
import openai
import pytest
import requests

import tokenlog
from tests.helpers import read_rows
from tests.sdk import Mistral, SDKError
from tokenlog.testing.server import MistralCompatibleServer

MESSAGES = [{"role": "user", "content": "Say hello in one word"}]


def ask(client: Mistral, model: str = "mistral-small-latest") -> object:
    return client.chat.complete(model=model, messages=MESSAGES)


def test_a_spent_budget_refuses_the_next_call_before_its_request(
    mistral: Mistral, server: MistralCompatibleServer
) -> None:
    budget = tokenlog.Budget(max_calls=3, name="hackathon")
    line = test_a_spent_budget_refuses_the_next_call_before_its_request.__code__.co_firstlineno + 3
    with tokenlog.usage_session("run", budget=budget) as session:
        for _ in range(3):
            ask(mistral)  # the third reaches the limit and returns normally
        before = server.requests_seen
        with pytest.raises(tokenlog.BudgetExceeded) as refused:
            ask(mistral)
        assert server.requests_seen == before  # no request was made
    assert session.calls == 3
    assert len(read_rows("mistral_usage_log.csv")) == 3
    error = refused.value
    assert (error.limit, error.spent, error.allowed, error.budget) == ("max_calls", 3, 3, budget)
    message = str(error)
    assert "'hackathon'" in message
    assert "3 calls of max_calls=3" in message
    assert "no request was made" in message
    assert f"{Path(__file__)}:{line}" in error.where
    assert "usage_session('run')" in error.where
    copy = pickle.loads(pickle.dumps(error))  # a process pool hands a worker's exception to its parent
    assert (str(copy), copy.limit, copy.spent, copy.where, copy.budget) == (message, "max_calls", 3, error.where, None)
    status = session.budget_status
    assert status is not None
    assert (status.calls, status.remaining, status.exceeded, status.in_flight) == (3, {"max_calls": 0}, True, 0)


def test_the_call_that_crosses_a_token_limit_returns_and_the_next_is_refused(
    mistral: Mistral, server: MistralCompatibleServer
) -> None:
    first = mistral.chat.complete(model="mistral-small-latest", messages=MESSAGES)
    per_call = first.usage.total_tokens
    budget = tokenlog.Budget(max_tokens=per_call + 1, warn_at=None)
    with tokenlog.usage_session(budget=budget) as session:
        ask(mistral)
        crossing = ask(mistral)  # spends 2 x per_call > the limit: returned as it came
        assert crossing.choices[0].message.content
        with pytest.raises(tokenlog.BudgetExceeded, match=f"{2 * per_call:,} tokens of max_tokens={per_call + 1}"):
            ask(mistral)
    assert session.calls == 2
    assert budget.status().remaining == {"max_tokens": 0}
    assert budget.status().total_tokens == 2 * per_call


def test_a_decorated_function_that_returns_text_is_refused_and_its_sdk_calls_count(
    mistral: Mistral, server: MistralCompatibleServer
) -> None:
    budget = tokenlog.Budget(max_calls=2)

    @tokenlog.track_usage(budget=budget)
    def call_mistral_and_log(prompt: str) -> str:
        response = mistral.chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": prompt}])
        return str(response.choices[0].message.content)

    assert call_mistral_and_log("one")
    assert call_mistral_and_log("two")
    before = server.requests_seen
    with pytest.raises(tokenlog.BudgetExceeded) as refused:
        call_mistral_and_log("three")
    assert server.requests_seen == before
    assert "@track_usage on" in refused.value.where
    assert "call_mistral_and_log" in refused.value.where
    rows = read_rows("mistral_usage_log.csv")
    assert len(rows) == 2
    # an SDK call made without the decorator is not under the function's budget
    with tokenlog.usage_session():
        ask(mistral)
    assert server.requests_seen == before + 1


def test_nested_budgets_each_hold_and_the_tightest_wins(mistral: Mistral, server: MistralCompatibleServer) -> None:
    team = tokenlog.Budget(max_calls=5, name="process")
    tokenlog.configure(budget=team)
    feature = tokenlog.Budget(max_calls=2, name="feature")
    with tokenlog.usage_session("summaries", budget=feature):
        ask(mistral)
        ask(mistral)
        with pytest.raises(tokenlog.BudgetExceeded, match="'feature'"):
            ask(mistral)
    with tokenlog.usage_session("other"):
        for _ in range(3):
            ask(mistral)  # the feature's budget is not in force here; the process's is: 2 + 3 = 5
        with pytest.raises(tokenlog.BudgetExceeded, match="'process'") as refused:
            ask(mistral)
    assert "configure(budget=...)" in refused.value.where
    assert (team.status().calls, feature.status().calls) == (5, 2)


def test_a_failed_call_costs_nothing_and_gives_its_place_back(
    mistral: Mistral, server: MistralCompatibleServer
) -> None:
    budget = tokenlog.Budget(max_calls=1)
    with tokenlog.usage_session(budget=budget):
        server.fail_next(500)
        with pytest.raises(SDKError):  # the SDK's own error, as it came
            ask(mistral)
        assert budget.status().in_flight == 0
        assert budget.status().calls == 0
        ask(mistral)
        with pytest.raises(tokenlog.BudgetExceeded):
            ask(mistral)


def test_a_cost_budget_refuses_a_model_without_a_price_before_its_request(
    mistral: Mistral, server: MistralCompatibleServer
) -> None:
    budget = tokenlog.Budget(max_cost_usd=5)
    with tokenlog.usage_session(budget=budget):
        before = server.requests_seen
        with pytest.raises(tokenlog.BudgetExceeded, match="cannot price a call of model 'my-finetune'") as refused:
            ask(mistral, "my-finetune")
        assert server.requests_seen == before
        assert refused.value.limit == "unpriced"
        assert "count_tokens_only" in str(refused.value)
        ask(mistral)  # a priced model goes on
    status = budget.status()
    assert status.calls == 1
    assert 0 < status.cost_usd < 0.001
    assert not status.exceeded


def test_unpriced_count_tokens_only_counts_an_unpriced_call_by_its_tokens(
    mistral: Mistral, server: MistralCompatibleServer
) -> None:
    budget = tokenlog.Budget(max_cost_usd=5, max_tokens=10_000, unpriced="count_tokens_only")
    with tokenlog.usage_session(budget=budget):
        response = ask(mistral, "my-finetune")
    status = budget.status()
    assert (status.calls, status.unpriced_calls, status.cost_usd) == (1, 1, 0.0)
    assert status.total_tokens == response.usage.total_tokens  # type: ignore[attr-defined]


def test_an_unpriced_call_the_budget_could_not_see_coming_stops_it(server: MistralCompatibleServer) -> None:
    budget = tokenlog.Budget(max_cost_usd=5)

    @tokenlog.track_usage(budget=budget)
    def ask_by_hand() -> dict[str, object]:  # no model= argument: the model is known only from the response
        return {"model": "my-finetune", "usage": {"prompt_tokens": 10, "completion_tokens": 5}}

    ask_by_hand()  # made, and recorded: its cost is unknown
    assert budget.status().exceeded
    assert budget.status().unpriced_calls == 1
    with pytest.raises(tokenlog.BudgetExceeded, match="'my-finetune' could not be priced"):
        ask_by_hand()


def test_one_warning_at_warn_at_names_the_users_line(mistral: Mistral, server: MistralCompatibleServer) -> None:
    budget = tokenlog.Budget(max_calls=5, warn_at=0.6, name="w")
    with tokenlog.usage_session(budget=budget), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(5):
            ask(mistral)
    found = [w for w in caught if issubclass(w.category, tokenlog.TokenlogWarning)]
    assert len(found) == 1, [str(w.message) for w in found]
    assert "budget 'w'" in str(found[0].message)
    assert "60% of max_calls=5 (3 calls)" in str(found[0].message)
    assert found[0].filename == __file__


def test_http_posts_to_a_model_endpoint_are_refused_and_other_requests_are_not(
    server: MistralCompatibleServer,
) -> None:
    url = server.url + "/v1/chat/completions"
    body = {"model": "mistral-small-latest", "messages": MESSAGES}
    with tokenlog.usage_session(budget=tokenlog.Budget(max_calls=1)):
        assert requests.post(url, json=body, timeout=10).status_code == 200
        before = server.requests_seen
        with pytest.raises(tokenlog.BudgetExceeded):
            requests.post(url, json=body, timeout=10)
        with pytest.raises(tokenlog.BudgetExceeded):
            httpx.post(url, json=body, timeout=10)
        assert server.requests_seen == before
        assert requests.get(server.url + "/v1/models", timeout=10).status_code == 404  # not a model call: made
        assert server.requests_seen == before + 1
    assert len(read_rows("mistral_usage_log.csv")) == 1


def test_a_stream_in_flight_finishes_when_another_call_spends_the_budget(
    oai: openai.OpenAI, server: MistralCompatibleServer
) -> None:
    budget = tokenlog.Budget(max_calls=2)
    with tokenlog.usage_session(budget=budget) as session:
        stream = oai.chat.completions.create(
            model="mistral-small-latest", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        oai.chat.completions.create(model="mistral-small-latest", messages=MESSAGES)
        chunks = list(stream)  # read after the other call: every chunk arrives, its usage counts
        assert chunks
        assert chunks[-1].usage is not None
        with pytest.raises(tokenlog.BudgetExceeded):
            oai.chat.completions.create(model="mistral-small-latest", messages=MESSAGES)
    assert session.calls == 2
    assert budget.status().calls == 2


def test_async_functions_are_refused_where_they_are_awaited(server: MistralCompatibleServer) -> None:
    budget = tokenlog.Budget(max_calls=1)

    @tokenlog.track_usage(budget=budget)
    async def answer() -> dict[str, object]:
        return {"model": "mistral-small", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}

    async def main() -> None:
        await answer()
        pending = answer()  # creating the coroutine raises nothing: awaiting it does
        with pytest.raises(tokenlog.BudgetExceeded):
            await pending

    asyncio.run(main())


# -- concurrency: the overshoot bound, counted on the server -------------------------------------------


def test_50_asyncio_tasks_under_a_budget_of_10_calls_make_exactly_10_requests(server: MistralCompatibleServer) -> None:
    server.latency = 0.05  # every call stays in flight a while: all 50 start before any returns
    budget = tokenlog.Budget(max_calls=10)
    refused = 0

    async def worker(client: openai.AsyncOpenAI) -> None:
        nonlocal refused
        for _ in range(3):
            try:
                await client.chat.completions.create(model="mistral-small-latest", messages=MESSAGES)
            except tokenlog.BudgetExceeded:
                refused += 1

    async def main() -> None:
        async with (
            openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0) as client,
            tokenlog.usage_session(budget=budget),
        ):
            await asyncio.gather(*(worker(client) for _ in range(50)))

    before = server.requests_seen
    asyncio.run(main())
    assert server.requests_seen - before == 10  # a call holds its place in max_calls while in flight
    assert len(read_rows("mistral_usage_log.csv")) == 10
    assert refused == 140
    assert budget.status().in_flight == 0


def test_50_asyncio_tasks_overshoot_a_token_budget_by_at_most_the_calls_in_flight(
    server: MistralCompatibleServer,
) -> None:
    server.latency = 0.02
    per_call = 0
    budget: tokenlog.Budget | None = None
    made = refused_after = 0

    async def worker(client: openai.AsyncOpenAI, gate: asyncio.Semaphore) -> None:
        nonlocal made, refused_after
        for _ in range(10):
            async with gate:  # at most 8 calls in flight at any moment
                try:
                    await client.chat.completions.create(model="mistral-small-latest", messages=MESSAGES)
                    made += 1
                except tokenlog.BudgetExceeded:
                    refused_after += 1
                    return

    async def main() -> None:
        nonlocal per_call, budget
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0) as client:
            probe = await client.chat.completions.create(model="mistral-small-latest", messages=MESSAGES)
            assert probe.usage is not None
            per_call = probe.usage.total_tokens
            budget = tokenlog.Budget(max_tokens=10 * per_call, warn_at=None)
            gate = asyncio.Semaphore(8)
            async with tokenlog.usage_session(budget=budget):
                await asyncio.gather(*(worker(client, gate) for _ in range(50)))

    asyncio.run(main())
    assert budget is not None
    before_rows = 0  # the probe was made outside any session and no decorator: not recorded
    rows = len(read_rows("mistral_usage_log.csv")) - before_rows
    assert 10 <= rows <= 10 + 8, rows  # the limit, plus at most the 8 in flight when it was reached
    assert made == rows
    assert refused_after == 50
    assert server.peak_in_flight <= 8


def test_threads_in_a_pool_share_the_sessions_budget(mistral: Mistral, server: MistralCompatibleServer) -> None:
    server.latency = 0.02
    budget = tokenlog.Budget(max_calls=10)
    refusals = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal refusals
        for _ in range(4):
            try:
                ask(mistral)
            except tokenlog.BudgetExceeded:
                with lock:
                    refusals += 1

    before = server.requests_seen
    with tokenlog.usage_session(budget=budget), ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(work) for _ in range(16)]:
            future.result()
    assert server.requests_seen - before == 10
    assert refusals == 54
    assert len(read_rows("mistral_usage_log.csv")) == 10


# -- arguments ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "has no limit"),
        ({"max_calls": -1}, "max_calls=-1: expected a number of 0 or more"),
        ({"max_calls": 2.5}, "expected a whole number"),
        ({"max_tokens": True}, "max_tokens=True"),
        ({"max_calls": 1, "warn_at": 1.5}, "warn_at=1.5"),
        ({"max_calls": 1, "unpriced": "free"}, "unpriced='free'"),
        ({"max_calls": 1, "since": datetime(2026, 1, 1)}, "has no time zone"),
        ({"max_calls": 1, "since": "last week"}, "since='last week'"),
        ({"max_calls": 1, "shared": "usage.json"}, "Budget(shared=...) 'usage.json' has the suffix '.json'"),
    ],
)
def test_bad_arguments_say_what_to_pass(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        tokenlog.Budget(**kwargs)  # type: ignore[arg-type]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_does_not_inherit_the_parents_calls_in_flight(tmp_path: Path) -> None:
    budget = tokenlog.Budget(max_calls=2, warn_at=None)
    assert budget.admit("mistral-small", True)  # a call in flight in the parent when it forks
    pid = os.fork()
    if pid == 0:  # the child: both places are free, the parent's call is the parent's
        code = 0 if budget.status().in_flight == 0 and budget.admit("mistral-small", True) else 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert budget.status().in_flight == 1
    budget.release()
