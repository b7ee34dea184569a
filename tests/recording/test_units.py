"""Units beyond the three counts, read from the responses the APIs document, through the real SDKs.

Each response body is one the provider documents (tests/data/usage_samples/, sources in SOURCES.md), served by
the local server with ``respond_next`` and parsed by the real mistralai or openai SDK, as a user's call would get
it. The row must stay valid in the mandatory format (``tokenlog validate`` accepts it) and keep the billed total.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

import tokenlog
from tests.helpers import read_rows
from tests.sdk import MISTRAL_MAJOR, Mistral
from tokenlog import CsvSink, MemorySink, TokenlogWarning, UsageRecord, track_usage
from tokenlog.format import EXTRA_COLUMNS
from tokenlog.record import UNIT_NAMES
from tokenlog.testing.server import MistralCompatibleServer

SAMPLES = Path(__file__).parents[1] / "data" / "usage_samples"
UNIT_COLUMNS = list(EXTRA_COLUMNS[EXTRA_COLUMNS.index("CachedTokens") :])  # CachedTokens ... CostUSD
needs_mistralai_2 = pytest.mark.skipif(MISTRAL_MAJOR < 2, reason="the conversations and audio APIs of mistralai 2.x+")


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.fixture
def memory() -> Iterator[MemorySink]:
    sink = MemorySink()
    tokenlog.configure(sinks=[sink, CsvSink("usage.csv", extra_fields=UNIT_COLUMNS), "usage.jsonl", "usage.db"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TokenlogWarning)  # a documented response reads without a warning
        yield sink


def units(record: UsageRecord) -> dict[str, object]:
    """The units the response gave (the cost the CostUSD column asks for is tests/pricing's subject)."""
    return {
        name: getattr(record, name) for name in UNIT_NAMES if getattr(record, name) is not None and name != "cost_usd"
    }


def counts(record: UsageRecord) -> tuple[str, int, int, int, str | None]:
    return record.model, record.prompt_tokens, record.completion_tokens, record.total_tokens, record.request_id


def validate(*paths: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tokenlog", "validate", *paths], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_cached_mistral_chat_counts_its_cached_tokens(
    memory: MemorySink, server: MistralCompatibleServer, mistral: Mistral
) -> None:
    server.respond_next(sample("mistral_chat_cached.json"))

    @track_usage
    def ask() -> object:
        return mistral.chat.complete(model="mistral-large-latest", messages=[{"role": "user", "content": "hi"}])

    ask()
    (record,) = memory.records
    assert counts(record) == ("mistral-large-latest", 1013, 30, 1043, "a4db7c530548494f8ff9986bcd2a7737")
    if MISTRAL_MAJOR >= 1:  # 0.x's UsageInfo drops every key it does not declare
        assert units(record) == {"cached_tokens": 1008}
    validate("usage.csv", "usage.jsonl", "usage.db")


@needs_mistralai_2
def test_a_conversation_with_web_search_keeps_its_billed_total_and_stays_valid(
    memory: MemorySink, server: MistralCompatibleServer, mistral: Mistral
) -> None:
    """Before: 188 + 55 written with a total of 7355, a row validate rejected; no model, no id."""
    body = sample("mistral_conversation_connectors.json")
    # The documented body (2025) predates the SDK's required `arguments` on a tool.execution entry; usage untouched.
    body["outputs"][0].setdefault("arguments", '{"query": "last European Football cup winner"}')
    server.respond_next(body)

    @track_usage
    def ask() -> object:
        return mistral.beta.conversations.start(
            inputs="Who won the last European Football cup?", model="mistral-medium-latest"
        )

    ask()
    (record,) = memory.records
    # the 7,112 connector tokens are input: prompt 188 + 7112, and the row keeps the billed total
    assert counts(record) == ("mistral-medium-latest", 7300, 55, 7355, "conv_06835b734f2776bb80008fa7a309bf5a")
    assert units(record) == {"connector_tokens": 7112, "connector_calls": {"web_search": 1}}
    (row,) = read_rows(Path("usage.csv"))
    assert (row["PromptTokens"], row["TotalTokens"], row["ConnectorTokens"], row["ConnectorCalls"]) == (
        "7300",
        "7355",
        "7112",
        '{"web_search":1}',
    )
    assert validate("usage.csv", "usage.jsonl", "usage.db").startswith("OK: all 3 files are valid usage logs (3 rows)")


@needs_mistralai_2
def test_a_transcription_counts_its_audio_seconds_and_its_audio_tokens_as_input(
    memory: MemorySink, server: MistralCompatibleServer, mistral: Mistral
) -> None:
    server.respond_next(sample("mistral_transcription.json"))

    @track_usage
    def transcribe() -> object:
        return mistral.audio.transcriptions.complete(
            model="voxtral-mini-latest", file={"content": b"ID3 not really audio", "file_name": "obama.mp3"}
        )

    transcribe()
    (record,) = memory.records
    assert counts(record)[:4] == ("voxtral-mini-latest", 3264 - 635, 635, 3264)
    assert units(record) == {"audio_seconds": 203}
    assert read_rows(Path("usage.csv"))[0]["AudioSeconds"] == "203"
    validate("usage.csv", "usage.jsonl", "usage.db")


def test_an_openai_chat_gives_cached_and_reasoning_tokens_and_its_service_tier(
    memory: MemorySink, server: MistralCompatibleServer, oai: openai.OpenAI
) -> None:
    server.respond_next(sample("openai_chat_reasoning.json"), sample("openai_chat_cached_recorded.json"))

    @track_usage
    def ask() -> object:
        return oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

    ask()
    ask()
    first, second = memory.records
    assert counts(first)[:4] == ("gpt-4o-2024-08-06", 1117, 46, 1163)
    assert units(first) == {"cached_tokens": 0, "reasoning_tokens": 0, "service_tier": "default"}  # said: 0, not None
    assert counts(second)[1:4] == (3702, 257, 3959)
    assert units(second)["cached_tokens"] == 3584
    validate("usage.csv", "usage.jsonl", "usage.db")


def test_the_openai_responses_api_gives_reasoning_and_cached_tokens(
    memory: MemorySink, server: MistralCompatibleServer, oai: openai.OpenAI
) -> None:
    server.respond_next(sample("openai_responses.json"))

    @track_usage
    def ask() -> object:
        return oai.responses.create(model="o1", input="Write a tongue twister")

    ask()
    (record,) = memory.records
    assert counts(record)[:4] == ("o1-2024-12-17", 81, 1035, 1116)
    assert units(record) == {"cached_tokens": 0, "reasoning_tokens": 832}


def test_units_round_trip_through_every_file_sink_and_every_command_reads_them(memory: MemorySink) -> None:
    @track_usage
    def ask() -> dict[str, object]:
        return sample("mistral_conversation_connectors.json")

    ask()
    (jsonl,) = [json.loads(line) for line in Path("usage.jsonl").read_text(encoding="ascii").splitlines()]
    assert (jsonl["connector_tokens"], jsonl["connector_calls"], "cached_tokens" in jsonl) == (
        7112,
        {"web_search": 1},
        False,  # a unit the response does not name is left out of the line
    )
    with sqlite3.connect("usage.db") as connection:
        connection.row_factory = sqlite3.Row
        (row,) = [dict(r) for r in connection.execute("SELECT * FROM usage")]
    assert (row["connector_tokens"], row["connector_calls"], row["cached_tokens"]) == (7112, '{"web_search":1}', None)
    merged = subprocess.run(
        [sys.executable, "-m", "tokenlog", "merge", "usage.jsonl", "usage.db", "-o", "merged.csv"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert merged.returncode == 0, merged.stderr
    (one,) = read_rows(Path("merged.csv"))  # the same call in two logs: once (the conversation id repeats)
    assert (one["PromptTokens"], one["ConnectorTokens"], one["ConnectorCalls"]) == ("7300", "7112", '{"web_search":1}')
    validate("merged.csv")


def test_a_plain_chat_row_has_no_unit_and_the_mandatory_csv_stays_five_columns(
    memory: MemorySink, mistral: Mistral
) -> None:
    tokenlog.configure(sinks=[memory, "mistral_usage_log.csv"])

    @track_usage
    def ask() -> object:
        return mistral.chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": "hi"}])

    ask()
    (record,) = memory.records
    assert units(record) == {}  # mistralai 3.x declares prompt_audio_seconds and service_tier, unset here
    assert Path("mistral_usage_log.csv").read_text(encoding="utf-8").splitlines()[0] == (
        "TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens"
    )


def test_a_unit_that_is_not_a_count_is_left_out_with_a_warning_and_the_row_is_written() -> None:
    sink = MemorySink()

    @track_usage(sinks=[sink])
    def ask() -> dict[str, object]:
        return {
            "model": "mistral-small-latest",
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "connector_tokens": "many"},
        }

    with pytest.warns(
        TokenlogWarning, match=r"usage.connector_tokens is 'many', expected a count, so the row has none"
    ):
        ask()
    (record,) = sink.records
    assert (record.total_tokens, units(record)) == (7, {})


def test_a_total_above_prompt_and_completion_that_no_unit_explains_counts_as_prompt_with_a_warning() -> None:
    sink = MemorySink()

    @track_usage(sinks=[sink])
    def ask() -> dict[str, object]:
        return {"model": "m", "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 10}}

    with pytest.warns(
        TokenlogWarning, match=r"the 3 tokens more are counted as prompt tokens, so the row keeps the total"
    ):
        ask()
    (record,) = sink.records
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (8, 2, 10)


def test_an_sqlite_table_of_an_earlier_tokenlog_gets_the_unit_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:  # the schema tokenlog 0.1.0 created, with one row in it
        connection.execute(
            "CREATE TABLE usage (timestamp TEXT NOT NULL, model TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, "
            "completion_tokens INTEGER NOT NULL, total_tokens INTEGER NOT NULL, session TEXT, function TEXT, "
            "latency_ms REAL, request_id TEXT, tags TEXT NOT NULL DEFAULT '{}')"
        )
        connection.execute(
            "INSERT INTO usage VALUES "
            "('2026-06-01T10:00:00.000000+00:00', 'old', 1, 2, 3, NULL, NULL, NULL, NULL, '{}')"
        )
    sink = tokenlog.SqliteSink(path)

    @track_usage(sinks=[sink])
    def ask() -> dict[str, object]:
        return sample("mistral_chat_cached.json")

    ask()
    sink.close()
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        rows = [dict(r) for r in connection.execute("SELECT * FROM usage ORDER BY rowid")]
    assert [(r["model"], r["total_tokens"], r["cached_tokens"]) for r in rows] == [
        ("old", 3, None),
        ("mistral-large-latest", 1043, 1008),
    ]
    assert list(rows[0])[-len(UNIT_NAMES) :] == list(UNIT_NAMES)
    validate(str(path))


def test_a_record_refuses_a_unit_of_the_wrong_kind() -> None:
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    with pytest.raises(ValueError, match=r"UsageRecord.cached_tokens is -1, expected a non-negative integer"):
        UsageRecord(now, "m", 1, 1, 2, cached_tokens=-1)
    with pytest.raises(ValueError, match=r"UsageRecord.audio_seconds is nan, expected a non-negative finite number"):
        UsageRecord(now, "m", 1, 1, 2, audio_seconds=float("nan"))
    with pytest.raises(ValueError, match=r"connector_calls\['web_search'\] is '1'"):
        UsageRecord(now, "m", 1, 1, 2, connector_calls={"web_search": "1"})  # type: ignore[dict-item]
    assert UsageRecord(now, "m", 1, 1, 2, connector_calls={"web_search": 1}).connector_calls == {"web_search": 1}


def test_a_total_below_prompt_and_completion_is_kept_as_given_with_a_warning() -> None:
    sink = MemorySink()

    @track_usage(sinks=[sink])
    def ask() -> dict[str, object]:
        return {"model": "m", "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 6}}

    with pytest.warns(TokenlogWarning, match=r"usage.total_tokens is 6, but prompt_tokens \+ completion_tokens is 7"):
        ask()
    (record,) = sink.records
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (5, 2, 6)


def test_the_test_server_replays_bodies_in_order_then_answers_as_before(
    server: MistralCompatibleServer, mistral: Mistral
) -> None:
    server.respond_next(sample("mistral_chat_cached.json"))
    messages = [{"role": "user", "content": "hi there"}]
    first = mistral.chat.complete(model="mistral-small-latest", messages=messages)  # type: ignore[arg-type]
    second = mistral.chat.complete(model="mistral-small-latest", messages=messages)  # type: ignore[arg-type]
    assert (first.id, first.usage.prompt_tokens) == ("a4db7c530548494f8ff9986bcd2a7737", 1013)
    assert (second.model, second.usage.prompt_tokens) == ("mistral-small-latest", 2)
    with pytest.raises(TypeError):
        server.respond_next({"not json": object()})


@needs_mistralai_2
def test_an_ocr_call_writes_a_row_with_its_pages_and_no_tokens(
    memory: MemorySink, server: MistralCompatibleServer, mistral: Mistral
) -> None:
    """Before: an OCRResponse carries usage_info, not usage, and no row was written."""
    server.respond_next(sample("mistral_ocr.json"))

    @track_usage
    def read_receipt() -> object:
        return mistral.ocr.process(
            model="mistral-ocr-latest",
            document={"type": "document_url", "document_url": "https://example.invalid/r.pdf"},
        )

    read_receipt()
    (record,) = memory.records
    assert counts(record)[:4] == ("mistral-ocr-2505-completion", 0, 0, 0)
    assert units(record) == {"pages": 1}
    assert read_rows(Path("usage.csv"))[0]["Pages"] == "1"
    validate("usage.csv", "usage.jsonl", "usage.db")


class AIMessage:
    """The attributes of LangChain's ``AIMessage`` that carry usage (langchain-core is not a dependency)."""

    def __init__(self, usage_metadata: dict[str, Any], response_metadata: dict[str, Any]) -> None:
        self.content = "..."
        self.id = "run-7f3c"
        self.usage_metadata = usage_metadata
        self.response_metadata = response_metadata


@pytest.mark.parametrize(
    ("name", "expected", "expected_units"),
    [
        # Anthropic: input_tokens leaves out the cache; the row's prompt counts it (151 + 4602 read + 0 written)
        ("anthropic_message.json", ("claude-sonnet-4-20250514", 4753, 38, 4791), {"cached_tokens": 4602}),
        ("anthropic_message_cache_write.json", ("claude-sonnet-4-20250514", 4749, 38, 4787), {"cached_tokens": 0}),
        # Gemini: thinking is output apart from the candidates (656 + 1549), and the total says so
        (
            "gemini_generate_content.json",
            ("gemini-2.5-flash", 3797, 2205, 6002),
            {"cached_tokens": 3055, "reasoning_tokens": 1549},
        ),
        ("ollama_chat.json", ("llama3.2", 26, 298, 324), {}),
        ("cohere_chat_v1.json", ("unknown", 5, 198, 203), {}),  # billed_units, not the 71 tokens it read
        ("cohere_chat_v2.json", ("unknown", 5, 418, 423), {}),
        ("bedrock_converse.json", ("unknown", 4107, 151, 4258), {}),
    ],
)
def test_other_providers_documented_responses(
    name: str, expected: tuple[object, ...], expected_units: dict[str, object]
) -> None:
    sink = MemorySink()
    tokenlog.configure(sinks=[sink, "usage.csv"])

    @track_usage
    def ask() -> dict[str, Any]:
        return sample(name)

    with warnings.catch_warnings():
        warnings.simplefilter("error", TokenlogWarning)
        ask()
    (record,) = sink.records
    assert counts(record)[:4] == expected
    assert {k: v for k, v in units(record).items() if k != "service_tier"} == expected_units
    validate("usage.csv")


def test_a_langchain_message_counts_its_usage_metadata() -> None:
    sink = MemorySink()

    @track_usage(sinks=[sink])
    def ask() -> AIMessage:
        return AIMessage(sample("langchain_usage_metadata.json"), {"model_name": "gpt-4o-mini"})

    ask()
    (record,) = sink.records
    assert counts(record) == ("gpt-4o-mini", 350, 240, 590, "run-7f3c")
    assert units(record) == {"cached_tokens": 100, "reasoning_tokens": 200}


def test_a_line_of_a_batch_jobs_output_file_is_read_from_its_response_body() -> None:
    lines = (SAMPLES / "mistral_batch_output_line.jsonl").read_text(encoding="utf-8").splitlines()
    records = [tokenlog.extract_usage(json.loads(line)) for line in lines]
    assert [(r.model, r.prompt_tokens, r.completion_tokens, r.total_tokens) for r in records if r] == [
        ("ministral-3b-latest", 10, 7, 17),
        ("ministral-3b-latest", 10, 28, 38),
    ]


# -- calls recorded inside a session without a decorator (instrumentation) --------------------------------------


@needs_mistralai_2
def test_ocr_transcription_and_conversation_calls_in_a_session_are_recorded_without_a_decorator(
    memory: MemorySink, server: MistralCompatibleServer, mistral: Mistral
) -> None:
    conversation = sample("mistral_conversation_connectors.json")
    conversation["outputs"][0].setdefault("arguments", "{}")  # see the conversation test above
    server.respond_next(sample("mistral_ocr.json"), sample("mistral_transcription.json"), conversation)
    with tokenlog.usage_session(sinks=[memory]) as session:
        mistral.ocr.process(
            model="mistral-ocr-latest", document={"type": "document_url", "document_url": "https://x.invalid/r.pdf"}
        )
        mistral.audio.transcriptions.complete(
            model="voxtral-mini-latest", file={"content": b"ID3", "file_name": "a.mp3"}
        )
        mistral.beta.conversations.start(inputs="Who won?", model="mistral-medium-latest")
    assert [(r.model, r.total_tokens) for r in memory.records] == [
        ("mistral-ocr-2505-completion", 0),
        ("voxtral-mini-latest", 3264),
        ("mistral-medium-latest", 7355),
    ]
    assert session.calls == 3
    assert session.by_model["mistral-ocr-2505-completion"].pages == 1
    assert session.by_model["mistral-medium-latest"].connector_calls == {"web_search": 1}


def test_openai_with_raw_response_in_a_session_is_recorded_from_its_body(
    memory: MemorySink, server: MistralCompatibleServer, oai: openai.OpenAI
) -> None:
    """litellm calls every OpenAI-compatible API so. Before: no row, and a warning that it had no usage."""
    with tokenlog.usage_session(sinks=[memory]) as session:
        raw = oai.chat.completions.with_raw_response.create(
            model="mistral-small-latest", messages=[{"role": "user", "content": "two words"}]
        )
        completion = raw.parse()
    assert session.calls == 1
    (record,) = memory.records
    assert (record.model, record.total_tokens, record.request_id) == (
        "mistral-small-latest",
        completion.usage.total_tokens,  # type: ignore[union-attr]
        completion.id,
    )


def test_openai_structured_output_parse_in_a_session_is_recorded(
    memory: MemorySink, server: MistralCompatibleServer, oai: openai.OpenAI
) -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        river: str

    body = sample("openai_chat_reasoning.json")
    body["choices"][0]["message"]["content"] = '{"river": "Seine"}'
    server.respond_next(body)
    with tokenlog.usage_session(sinks=[memory]) as session:
        parsed = oai.chat.completions.parse(
            model="gpt-4o", messages=[{"role": "user", "content": "Paris river?"}], response_format=Answer
        )
    assert parsed.choices[0].message.parsed == Answer(river="Seine")
    assert session.calls == 1
    assert counts(memory.records[0])[:4] == ("gpt-4o-2024-08-06", 1117, 46, 1163)


def test_openai_with_streaming_response_is_recorded_when_its_body_is_read(
    memory: MemorySink, server: MistralCompatibleServer, oai: openai.OpenAI
) -> None:
    messages: Any = [{"role": "user", "content": "three words here"}]
    with tokenlog.usage_session(sinks=[memory]) as session:
        with oai.chat.completions.with_streaming_response.create(model="mistral-small-latest", messages=messages) as r:
            assert memory.records == []  # nothing read yet: tokenlog does not read it for you
            completion = r.parse()
        with oai.chat.completions.with_streaming_response.create(model="mistral-small-latest", messages=messages) as r:
            data = r.json()
            r.parse()  # read twice: recorded once
    assert session.calls == 2
    assert [record.request_id for record in memory.records] == [completion.id, data["id"]]


def test_async_openai_with_streaming_response_is_recorded_when_its_body_is_read(
    memory: MemorySink, server: MistralCompatibleServer
) -> None:
    import asyncio

    async def main() -> str:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0) as client:
            with tokenlog.usage_session(sinks=[memory]):
                async with client.chat.completions.with_streaming_response.create(
                    model="mistral-small-latest", messages=[{"role": "user", "content": "hi"}]
                ) as response:
                    return (await response.parse()).id

    request_id = asyncio.run(main())
    assert [record.request_id for record in memory.records] == [request_id]


@needs_mistralai_2
def test_ocr_transcription_conversation_and_cached_chat_cost_what_the_price_file_says(
    server: MistralCompatibleServer, mistral: Mistral, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(
        "[models.mistral-ocr]\npage = 0.001\n\n"
        "[models.voxtral-mini]\ninput = 0.04\noutput = 0.04\naudio_minute = 0.002\n\n"
        "[models.mistral-medium]\ninput = 1.5\noutput = 7.5\nconnector_call = { web_search = 0.03 }\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("TOKENLOG_PRICES", str(prices))
    conversation = sample("mistral_conversation_connectors.json")
    conversation["outputs"][0].setdefault("arguments", "{}")
    cached = {**sample("mistral_chat_cached.json"), "model": "mistral-small-latest"}
    server.respond_next(sample("mistral_ocr.json"), sample("mistral_transcription.json"), conversation, cached)
    with tokenlog.usage_session(sinks=[]) as session:
        mistral.ocr.process(
            model="mistral-ocr-latest", document={"type": "document_url", "document_url": "https://x.invalid/r.pdf"}
        )
        mistral.audio.transcriptions.complete(
            model="voxtral-mini-latest", file={"content": b"ID3", "file_name": "a.mp3"}
        )
        mistral.beta.conversations.start(inputs="Who won?", model="mistral-medium-latest")
        mistral.chat.complete(model="mistral-small-latest", messages=[{"role": "user", "content": "hi"}])
    ocr = 1 * 0.001
    transcription = (2629 + 635) * 0.04 / 1e6 + 203 / 60 * 0.002
    web_search = (7300 * 1.5 + 55 * 7.5) / 1e6 + 1 * 0.03
    cached_chat = (5 * 0.1 + 1008 * 0.01 + 30 * 0.3) / 1e6  # the built-in mistral-small, cached at a tenth
    assert session.cost == pytest.approx(ocr + transcription + web_search + cached_chat)


@needs_mistralai_2
def test_a_conversation_whose_outputs_name_no_model_takes_the_model_of_the_request(
    memory: MemorySink, server: MistralCompatibleServer, mistral: Mistral
) -> None:
    conversation = sample("mistral_conversation_connectors.json")
    conversation["outputs"] = [entry for entry in conversation["outputs"] if entry["type"] != "tool.execution"]
    del conversation["outputs"][0]["model"]
    server.respond_next(conversation)
    with tokenlog.usage_session(sinks=[memory]):
        mistral.beta.conversations.start(inputs="Who won?", model="mistral-medium-latest")
    (record,) = memory.records
    assert (record.model, record.request_id) == ("mistral-medium-latest", "conv_06835b734f2776bb80008fa7a309bf5a")
