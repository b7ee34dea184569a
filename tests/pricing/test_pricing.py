"""Prices: a dated built-in table, family lookup, TOML overrides, and UsageSession.cost."""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import pytest

import tokenlog
from tokenlog.pricing import PricingError, builtin_prices, default_prices, load_prices

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_the_price_table_ships_in_the_package_with_its_date_and_source() -> None:
    data = tomllib.loads(resources.files("tokenlog.pricing").joinpath("mistral.toml").read_text(encoding="utf-8"))
    assert data["currency"] == "USD"
    assert data["as_of"]
    assert data["source"].startswith("https://")
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch.fnmatch("mistral.toml", pattern) for pattern in patterns["tokenlog.pricing"])


@pytest.mark.parametrize(
    "family",
    [
        "mistral-small",
        "mistral-medium",
        "mistral-large",
        "codestral",
        "ministral-8b",
        "pixtral-large",
        "magistral-medium",
        "mistral-embed",
    ],
)
def test_every_current_family_has_an_input_and_an_output_price(family: str) -> None:
    price = builtin_prices().models[family]
    assert price.input is not None  # (a negative price cannot get this far: the loader refuses it)
    assert price.output is not None


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("mistral-small-latest", "mistral-small"),
        ("mistral-small-2506", "mistral-small"),
        ("Mistral-Large-Latest", "mistral-large"),
        ("mistral/mistral-large-latest", "mistral-large"),
        ("mistral-large-2411", "mistral-large-2411"),
        ("mistral-large-2407", "mistral-large-2411"),
        ("mistral-medium-2505", "mistral-medium-2508"),
        ("codestral-2501", "codestral"),
        ("magistral-small-2509", "magistral-small"),
        ("open-mistral-nemo", "mistral-nemo"),
        ("mistral-embed", "mistral-embed"),
    ],
)
def test_aliases_and_dated_versions_find_their_family(model: str, family: str) -> None:
    price = builtin_prices().lookup(model)
    assert price is not None
    assert price.name == family


def test_cost_is_tokens_times_the_price_per_million() -> None:
    prices = builtin_prices()
    large = prices.models["mistral-large"]
    assert large.input is not None
    assert large.output is not None
    expected = (1200 * large.input + 300 * large.output) / 1_000_000
    assert prices.cost("mistral-large-latest", 1200, 300) == pytest.approx(expected)


def test_an_unknown_model_and_a_per_page_model_have_no_cost_never_zero() -> None:
    prices = builtin_prices()
    assert prices.lookup("my-finetune") is None
    assert prices.cost("my-finetune", 10, 10) is None
    assert prices.cost("mistral-ocr-latest", 10, 10) is None


def write_prices(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_toml_file_overrides_and_extends_the_table(tmp_path: Path) -> None:
    extra = write_prices(
        tmp_path / "prices.toml",
        "[models.mistral-large]\ninput = 1.0\noutput = 2.0\n\n"
        '[models.team-ft]\ninput = 3\noutput = 4\naliases = ["ft:abc"]\n',
    )
    prices = load_prices([extra], environ=False)
    assert prices.cost("mistral-large-latest", 1_000_000, 1_000_000) == 3.0
    assert prices.cost("ft:abc", 1_000_000, 0) == 3.0
    assert prices.cost("mistral-small-latest", 0, 0) == 0.0  # the rest of the table is kept
    assert prices.overrides == (str(extra),)
    assert str(extra) in prices.describe()
    assert builtin_prices().cost("team-ft", 1, 1) is None  # the built-in table itself is unchanged


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[models.x\n", "not valid TOML"),
        ("[models.x]\ninput = -1\noutput = 1\n", "models.x.input is -1, expected a number"),
        ('[models.x]\ninput = "cheap"\noutput = 1\n', "models.x.input is 'cheap'"),
        ("[models.x]\ninput = 1\n", "needs both input and output"),
        ("[models.x]\ninput = 1\noutput = 1\nprice = 2\n", "unknown key 'price'"),
        ('currency = "EUR"\n', "currency is 'EUR', expected 'USD'"),
        ("[models.x]\ninput = 1\noutput = 1\naliases = 'y'\n", "aliases must be a list"),
    ],
)
def test_a_bad_price_file_is_refused_with_its_name_and_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write_prices(tmp_path / "bad.toml", text)
    with pytest.raises(PricingError, match=r"bad\.toml") as error:
        load_prices([path], environ=False)
    assert message in str(error.value)


def test_a_missing_price_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match=r"nowhere\.toml: no such price file"):
        load_prices([tmp_path / "nowhere.toml"], environ=False)


def test_session_cost_sums_every_model_at_its_price() -> None:
    with tokenlog.usage_session(sinks=[]) as session:
        session.record({"model": "mistral-small-latest", "usage": {"prompt_tokens": 1000, "completion_tokens": 500}})
        session.record({"model": "mistral-large-2411", "usage": {"prompt_tokens": 2000, "completion_tokens": 100}})
    small = builtin_prices().cost("mistral-small-latest", 1000, 500)
    large = builtin_prices().cost("mistral-large-2411", 2000, 100)
    assert small is not None
    assert large is not None
    assert session.cost == pytest.approx(small + large)


def test_session_cost_is_zero_for_no_calls_and_none_when_a_model_is_unpriced() -> None:
    with tokenlog.usage_session(sinks=[]) as session:
        assert session.cost == 0.0
        session.record({"model": "mistral-small-latest", "usage": {"prompt_tokens": 10, "completion_tokens": 5}})
        session.record({"model": "team-ft", "usage": {"prompt_tokens": 10, "completion_tokens": 5}})
    assert session.cost is None


def test_tokenlog_prices_prices_session_cost_and_is_reread_when_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_prices(tmp_path / "prices.toml", "[models.team-ft]\ninput = 1\noutput = 1\n")
    monkeypatch.setenv("TOKENLOG_PRICES", str(path))
    with tokenlog.usage_session(sinks=[]) as session:
        session.record({"model": "team-ft", "usage": {"prompt_tokens": 500_000, "completion_tokens": 500_000}})
    assert session.cost == 1.0
    write_prices(path, "[models.team-ft]\ninput = 2\noutput = 2\n")
    os.utime(path, ns=(os.stat(path).st_mtime_ns + 10**9,) * 2)
    assert session.cost == 2.0
    assert default_prices().overrides == (str(path),)


def test_a_table_older_than_120_days_is_stale_unless_you_give_your_own_prices(tmp_path: Path) -> None:
    from datetime import date

    from tokenlog.pricing import STALE_DAYS

    table = builtin_prices()
    start = date.fromisoformat(table.as_of + "-01")
    assert table.age_days(start) == 0
    assert not table.stale(date.fromordinal(start.toordinal() + STALE_DAYS))
    assert table.stale(date.fromordinal(start.toordinal() + STALE_DAYS + 1))
    own = tmp_path / "own.toml"
    own.write_text("[models.x]\ninput = 1\noutput = 1\n", encoding="utf-8")
    assert not table.updated(own).stale(date.fromordinal(start.toordinal() + 1000))


def test_report_says_once_that_the_prices_are_old(tmp_path: Path) -> None:
    from tests.helpers import run_tokenlog
    from tokenlog import CsvSink, UsageRecord

    sink = CsvSink(tmp_path / "usage.csv")
    now = datetime.now(timezone.utc)
    sink.write_many([UsageRecord(now, "mistral-small-latest", 1, 1, 2), UsageRecord(now, "mistral-large", 1, 1, 2)])
    sink.close()
    out = run_tokenlog("report", "usage.csv", cwd=tmp_path).stdout
    stale = builtin_prices().stale()
    assert out.count("These prices are more than 120 days old") == (1 if stale else 0)
    document = json.loads(run_tokenlog("report", "usage.csv", "--format", "json", cwd=tmp_path).stdout)
    assert document["prices"]["age_days"] == builtin_prices().age_days()
