"""Costs that use every unit: cached tokens at the cached rate, pages, audio minutes, connector calls.

The responses are the providers' documented ones (tests/data/usage_samples/); every expected cost is worked out
here by hand from the table's prices, and a unit without a price makes the cost unknown, never 0.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tokenlog
from tokenlog.pricing import BilledUnits, PricingError, builtin_prices, load_prices

SAMPLES = Path(__file__).parents[1] / "data" / "usage_samples"
SMALL_IN, SMALL_OUT = 0.1, 0.3  # mistral-small, USD per million tokens (tokenlog/pricing/mistral.toml)
MEDIUM_IN, MEDIUM_OUT = 1.5, 7.5  # mistral-medium


def sample(name: str, **changes: object) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    body.update(changes)
    return body


def test_cached_prompt_tokens_cost_a_tenth_of_the_input_price() -> None:
    """The issue's example: 1,008 of 1,013 prompt tokens cached cost about 5.6x too much when priced in full."""
    prices = builtin_prices()
    assert prices.lookup("mistral-small-latest").cached_input == pytest.approx(SMALL_IN * 0.1)  # type: ignore[union-attr]
    by_hand = (5 * SMALL_IN + 1008 * SMALL_IN * 0.1 + 30 * SMALL_OUT) / 1e6
    cached = prices.cost("mistral-small-latest", 1013, 30, BilledUnits(cached_tokens=1008))
    assert cached == pytest.approx(by_hand)
    in_full = prices.cost("mistral-small-latest", 1013, 30)
    assert in_full == pytest.approx((1013 * SMALL_IN + 30 * SMALL_OUT) / 1e6)
    assert in_full / cached == pytest.approx(5.633, abs=0.001)  # type: ignore[operator]


def test_a_session_prices_a_cached_chat_at_the_cached_rate() -> None:
    @tokenlog.track_usage(sinks=[])
    def ask() -> dict[str, Any]:
        return sample("mistral_chat_cached.json", model="mistral-small-latest")

    with tokenlog.usage_session(sinks=[]) as session:
        ask()
    assert session.by_model["mistral-small-latest"].cached_tokens == 1008
    assert session.cost == pytest.approx((5 * SMALL_IN + 1008 * SMALL_IN * 0.1 + 30 * SMALL_OUT) / 1e6)


def test_report_prices_cached_tokens_when_the_log_has_them(tmp_path: Path) -> None:
    tokenlog.configure(sinks=[tokenlog.CsvSink("cached.csv", extra_fields=["CachedTokens"]), "plain.csv"])

    @tokenlog.track_usage
    def ask() -> dict[str, Any]:
        return sample("mistral_chat_cached.json", model="mistral-small-latest")

    ask()
    ask()
    tokenlog.flush()

    def cost(log: str) -> float:
        done = subprocess.run(
            [sys.executable, "-m", "tokenlog", "report", log, "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)["total"]["cost_usd"]  # type: ignore[no-any-return]

    assert cost("cached.csv") == pytest.approx(2 * (5 * SMALL_IN + 1008 * SMALL_IN * 0.1 + 30 * SMALL_OUT) / 1e6)
    assert cost("plain.csv") == pytest.approx(2 * (1013 * SMALL_IN + 30 * SMALL_OUT) / 1e6)  # it cannot know


PRICE_FILE = """
[models.mistral-ocr]
page = 0.001
note = "our contract: $1 per 1,000 pages"

[models.voxtral-mini]
input = 0.04
output = 0.04
audio_minute = 0.002

[models.mistral-medium]
input = 1.5
output = 7.5
connector_call = { web_search = 0.03 }
"""


def test_pages_audio_minutes_and_connector_calls_use_their_prices(tmp_path: Path) -> None:
    prices = load_prices([_write(tmp_path / "prices.toml", PRICE_FILE)], environ=False)
    assert prices.cost("mistral-ocr-2505-completion", 0, 0, BilledUnits(pages=3)) == pytest.approx(0.003)
    assert prices.cost("voxtral-mini-latest", 2629, 635, BilledUnits(audio_seconds=203)) == pytest.approx(
        (2629 + 635) * 0.04 / 1e6 + 203 / 60 * 0.002
    )
    conversation = BilledUnits(connector_calls={"web_search": 1})
    assert prices.cost("mistral-medium-latest", 7300, 55, conversation) == pytest.approx(
        (7300 * MEDIUM_IN + 55 * MEDIUM_OUT) / 1e6 + 0.03
    )


def test_a_unit_without_a_price_makes_the_cost_unknown_never_zero() -> None:
    prices = builtin_prices()
    assert prices.cost("mistral-ocr-latest", 0, 0, BilledUnits(pages=1)) is None  # no page price shipped
    assert prices.cost("mistral-ocr-latest", 0, 0) is None
    assert prices.cost("mistral-medium-latest", 7300, 55, BilledUnits(connector_calls={"web_search": 1})) is None
    assert prices.cost("mistral-small-latest", 10, 5, BilledUnits(audio_seconds=3.0)) is None
    # zero of a unit is nothing to price
    assert prices.cost("mistral-small-latest", 10, 5, BilledUnits(connector_calls={"web_search": 0})) is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cached_input_share = 2\n", "cached_input_share is 2, expected a fraction of the input price"),
        (
            '[models.m]\ninput = 1\noutput = 1\npage = "cheap"\n',
            "models.m.page is 'cheap', expected a number of USD per page",
        ),
        ("[models.m]\ninput = 1\noutput = 1\nconnector_call = 3\n", "models.m.connector_call must be a table"),
    ],
)
def test_a_bad_unit_price_is_refused_naming_it(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PricingError, match=message):
        load_prices([_write(tmp_path / "bad.toml", text)], environ=False)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_cost_usd_is_written_when_recorded_if_asked_and_report_uses_it_unless_repriced(tmp_path: Path) -> None:
    tokenlog.configure(sinks=[tokenlog.CsvSink("priced.csv", extra_fields=["CachedTokens", "CostUSD"]), "plain.csv"])

    @tokenlog.track_usage
    def ask() -> dict[str, Any]:
        return sample("mistral_chat_cached.json", model="mistral-small-latest")

    ask()
    tokenlog.flush()
    by_hand = (5 * SMALL_IN + 1008 * SMALL_IN * 0.1 + 30 * SMALL_OUT) / 1e6
    (row,) = read_csv("priced.csv")
    assert float(row["CostUSD"]) == pytest.approx(by_hand)
    assert read_csv("plain.csv")[0].keys() == {
        "TimestampUTC",
        "Model",
        "PromptTokens",
        "CompletionTokens",
        "TotalTokens",
    }
    dearer = _write(tmp_path / "dearer.toml", "[models.mistral-small]\ninput = 1.0\noutput = 3.0\ncached_input = 0.1\n")

    def cost(*args: str) -> float:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "tokenlog",
                "report",
                "priced.csv",
                "--format",
                "json",
                "--prices",
                str(dearer),
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(done.stdout)["total"]["cost_usd"]  # type: ignore[no-any-return]

    assert cost() == pytest.approx(by_hand)  # the price it had when it was made
    assert cost("--reprice") == pytest.approx((5 * 1.0 + 1008 * 0.1 + 30 * 3.0) / 1e6)  # today's table


def test_a_call_without_a_price_gets_no_cost_usd_and_the_row_is_written() -> None:
    tokenlog.configure(sinks=[tokenlog.CsvSink("priced.csv", extra_fields=["CostUSD"])])

    @tokenlog.track_usage
    def ask() -> dict[str, Any]:
        return {"model": "my-finetune", "usage": {"prompt_tokens": 3, "completion_tokens": 4}}

    ask()
    tokenlog.flush()
    assert read_csv("priced.csv")[0]["CostUSD"] == ""


def read_csv(path: str) -> list[dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


DATED = """
[[models.mistral-small]]
from = "2026-06-01"
input = 0.1
output = 0.3

[[models.mistral-small]]
from = 2025-01-01
input = 0.2
output = 0.6
"""


def test_a_row_is_priced_with_the_entry_in_force_at_its_time(tmp_path: Path) -> None:
    prices = load_prices([_write(tmp_path / "dated.toml", DATED)], environ=False)
    assert prices.dated
    assert prices.cost("mistral-small-latest", 1_000_000, 0, when="2026-05-31T23:59:59+00:00") == pytest.approx(0.2)
    assert prices.cost("mistral-small-latest", 1_000_000, 0, when="2026-06-01T00:00:00+00:00") == pytest.approx(0.1)
    assert prices.cost("mistral-small-latest", 1_000_000, 0) == pytest.approx(0.1)  # no time: the newest
    assert prices.cost("mistral-small-latest", 1_000_000, 0, when="2024-01-01") == pytest.approx(0.2)  # the first


def test_report_prices_calls_on_each_side_of_a_price_change_apart(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from tokenlog import UsageRecord

    sink = tokenlog.CsvSink(tmp_path / "usage.csv")
    sink.write_many(
        [
            UsageRecord(
                datetime(2026, 5, 31, 12, tzinfo=timezone.utc), "mistral-small-latest", 1_000_000, 0, 1_000_000
            ),
            UsageRecord(datetime(2026, 6, 1, 12, tzinfo=timezone.utc), "mistral-small-latest", 1_000_000, 0, 1_000_000),
        ]
    )
    sink.close()
    prices = _write(tmp_path / "dated.toml", DATED)
    done = subprocess.run(
        [sys.executable, "-m", "tokenlog", "report", "usage.csv", "--format", "json", "--prices", str(prices)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    document = json.loads(done.stdout)
    assert [(g["model"], g["calls"]) for g in document["groups"]] == [("mistral-small-latest", 2)]  # one group
    assert document["total"]["cost_usd"] == pytest.approx(0.2 + 0.1)
    by_day = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tokenlog",
                "report",
                "usage.csv",
                "--by",
                "day",
                "--format",
                "json",
                "--prices",
                str(prices),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        ).stdout
    )
    assert [(g["day"], g["cost_usd"]) for g in by_day["groups"]] == [("2026-05-31", 0.2), ("2026-06-01", 0.1)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[[models.m]]\ninput = 1\noutput = 1\n[[models.m]]\ninput = 2\noutput = 2\n",
            "each of its 2 entries needs a from",
        ),
        (
            '[[models.m]]\nfrom = "2026-01-01"\ninput = 1\noutput = 1\n'
            '[[models.m]]\nfrom = "2026-01-01"\ninput = 2\noutput = 2\n',
            "two entries have the same from date",
        ),
        ('[models.m]\nfrom = "June"\ninput = 1\noutput = 1\n', "models.m.from is 'June', expected a date"),
    ],
)
def test_bad_dated_entries_are_refused_naming_them(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PricingError, match=message):
        load_prices([_write(tmp_path / "bad.toml", text)], environ=False)
