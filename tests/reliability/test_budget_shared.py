"""Shared budgets: real processes writing one CSV or SQLite log share one cap, counted on the server; the log is
followed as it grows, reread when it is rewritten, and a log that cannot be read never breaks a call."""

from __future__ import annotations

import json
import multiprocessing.synchronize
import os
import warnings
from pathlib import Path

import pytest

import tokenlog
from tests.helpers import logged_prompts, run_together
from tokenlog.testing.server import MistralCompatibleServer

PROCESSES = 8
LIMIT = 40


def _spend_until_refused(url: str, log: str, out: str, start: multiprocessing.synchronize.Event) -> None:
    """In a spawned process: call the server through the real openai SDK until the shared budget refuses."""
    import openai

    import tokenlog

    tokenlog.configure(sinks=[log], on_error="raise")
    budget = tokenlog.Budget(max_calls=LIMIT, shared=log, warn_at=None)
    made = refused = 0
    start.wait()
    with (
        openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0) as client,
        tokenlog.usage_session(budget=budget),
    ):
        for _ in range(LIMIT):
            try:
                client.chat.completions.create(
                    model="mistral-small-latest", messages=[{"role": "user", "content": "hi"}]
                )
                made += 1
            except tokenlog.BudgetExceeded:
                refused += 1
    Path(out).write_text(json.dumps({"made": made, "refused": refused, "seen": budget.status().calls}))


@pytest.mark.parametrize("suffix", [".csv", ".db"])
def test_eight_processes_sharing_one_log_stay_within_the_limit_plus_the_calls_in_flight(
    server: MistralCompatibleServer, tmp_path: Path, suffix: str
) -> None:
    server.latency = 0.005
    log = tmp_path / f"team{suffix}"
    before = server.requests_seen
    outs = [tmp_path / f"worker-{w}.json" for w in range(PROCESSES)]
    run_together(_spend_until_refused, [(server.url, str(log), str(out)) for out in outs])
    results = [json.loads(out.read_text()) for out in outs]
    rows = len(logged_prompts(log))
    made = sum(r["made"] for r in results)
    assert server.requests_seen - before == made == rows  # a refused call made no request
    # Each process has one call in flight at most: the overshoot is at most one call per process.
    assert LIMIT <= rows <= LIMIT + PROCESSES, rows
    assert all(r["refused"] > 0 for r in results)  # every process was stopped by the others' calls too
    assert all(LIMIT <= r["seen"] <= rows for r in results)  # it counted the rows of all, whoever wrote them


def _row(i: int, when: str = "2026-06-01T10:00:00.000000+00:00", model: str = "mistral-small") -> str:
    return f"{when},{model},{i},1,{i + 1}\n"


HEADER = "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens\n"


def test_a_shared_log_is_followed_as_it_grows_and_reread_when_rewritten(tmp_path: Path) -> None:
    log = tmp_path / "team.csv"
    log.write_text(HEADER + "".join(_row(i) for i in range(5)))
    budget = tokenlog.Budget(max_tokens=1_000, shared=log)
    assert (budget.status().calls, budget.status().total_tokens) == (5, 15)
    with log.open("a") as handle:  # another process appends: only the new bytes are read
        handle.write(_row(10) + "2026-06-01T10:00:01.000000+00:00,mistral-small,1")  # a row still being written
    assert budget.status().calls == 6
    with log.open("a") as handle:
        handle.write(",1,2\n")
    assert (budget.status().calls, budget.status().total_tokens) == (7, 28)
    rewritten = tmp_path / "merged.csv"  # tokenlog merge -o / repair: a new file moved into place
    rewritten.write_text(HEADER + _row(100))
    os.replace(rewritten, log)
    assert (budget.status().calls, budget.status().total_tokens) == (1, 101)
    log.write_text(HEADER + _row(1) + _row(2) + _row(3))  # rewritten in place, larger than what was read
    assert budget.status().calls == 3


def test_a_shared_budget_counts_rows_since_since_and_prices_them(tmp_path: Path) -> None:
    log = tmp_path / "team.csv"
    log.write_text(
        HEADER
        + _row(1_000_000, "2026-05-31T23:59:59.000000+00:00", "mistral-large")
        + _row(1_000_000, "2026-06-01T00:00:00.000000+00:00", "mistral-large")
    )
    budget = tokenlog.Budget(max_cost_usd=5, shared=log, since="2026-06-01")
    status = budget.status()
    assert status.calls == 1
    expected = tokenlog.pricing.default_prices().cost("mistral-large", 1_000_000, 1)
    assert status.cost_usd == pytest.approx(expected)


def test_a_shared_jsonl_log_counts_and_an_unpriced_row_stops_a_cost_budget(tmp_path: Path) -> None:
    log = tmp_path / "team.jsonl"
    record = {"timestamp": "2026-06-01T10:00:00.000000+00:00", "prompt_tokens": 5, "completion_tokens": 1}
    log.write_text(json.dumps({**record, "model": "mistral-small", "total_tokens": 6}) + "\n")
    budget = tokenlog.Budget(max_cost_usd=5, shared=log)
    assert (budget.status().calls, budget.status().exceeded) == (1, False)
    with log.open("a") as handle:  # a teammate called a model tokenlog has no price for
        handle.write(json.dumps({**record, "model": "their-finetune", "total_tokens": 6}) + "\n")
    with tokenlog.usage_session(sinks=[], budget=budget), pytest.raises(tokenlog.BudgetExceeded, match="priced"):
        tokenlog.track_usage(lambda: None)()


def test_a_shared_log_that_cannot_be_read_warns_once_and_counts_this_process(tmp_path: Path) -> None:
    log = tmp_path / "team.csv"
    log.write_text("not,a,usage,log\n1,2,3,4\n")
    budget = tokenlog.Budget(max_calls=2, shared=log, warn_at=None)

    @tokenlog.track_usage(sinks=[])
    def ask() -> dict[str, object]:
        return {"model": "mistral-small", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}

    with warnings.catch_warnings(record=True) as caught, tokenlog.usage_session(sinks=[], budget=budget):
        warnings.simplefilter("always")
        ask()
        ask()  # the call is never broken by the log: it counts on this process's own calls
        with pytest.raises(tokenlog.BudgetExceeded):
            ask()
    found = [str(w.message) for w in caught if issubclass(w.category, tokenlog.TokenlogWarning)]
    assert len(found) == 1, found
    assert str(log) in found[0]
    assert "counts this process's calls only" in found[0]
    status = budget.status()
    assert (status.calls, status.source) == (2, "this process")
    assert status.problem is not None
    assert "no TimestampUTC" in status.problem


def test_a_shared_sqlite_log_is_followed_and_reread_when_rows_go(tmp_path: Path) -> None:
    log = tmp_path / "team.db"
    budget = tokenlog.Budget(max_calls=100, shared=log)
    assert budget.status().calls == 0  # no file yet: no rows
    sink = tokenlog.SqliteSink(log)
    with tokenlog.usage_session(sinks=[sink]) as session:
        for i in range(3):
            session.record({"model": "mistral-small", "usage": {"prompt_tokens": i, "completion_tokens": 1}})
    assert budget.status().calls == 3
    import sqlite3

    with sqlite3.connect(log) as connection:
        connection.execute("DELETE FROM usage WHERE rowid > 1")
    connection.close()
    assert budget.status().calls == 1
    sink.close()


def test_a_shared_log_that_does_not_exist_yet_costs_one_stat_and_counts_once_written(tmp_path: Path) -> None:
    log = tmp_path / "later.csv"
    budget = tokenlog.Budget(max_calls=3, shared=log, warn_at=None)
    tail = budget._tail
    assert tail is not None
    assert budget.status().calls == 0
    assert tail.unchanged()  # no file: the next check is one stat that finds none again
    log.write_text(HEADER + _row(1) + _row(2) + _row(3))
    assert not tail.unchanged()
    with pytest.raises(tokenlog.BudgetExceeded, match="3 calls of max_calls=3"):
        budget.admit("mistral-small", True)
