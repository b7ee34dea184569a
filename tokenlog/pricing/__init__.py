"""Model prices and cost estimates: a dated table of Mistral prices that you can override.

The built-in table (``mistral.toml`` in this package) gives USD per million input (prompt) and
output (completion) tokens for Mistral's models, with the date and the source it was taken from.
A model name finds its price by its exact name or an alias, else by its family: the name without a
provider prefix (``mistral/``) and without a ``-latest`` or dated (``-2411``) suffix. A model with
no price has cost ``None`` ("unknown"), never 0.

Your own TOML file of the same shape overrides or extends the table: ``TOKENLOG_PRICES=FILE``, or
``tokenlog report --prices FILE``.

>>> prices = builtin_prices()
>>> prices.lookup("mistral-small-latest").name
'mistral-small'
>>> prices.cost("mistral-small-2506", 1_000_000, 1_000_000)
0.4
>>> prices.cost("my-own-model", 10, 5) is None
True
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from .._fork import fork_safe_lock
from ..record import BilledUnits

__all__ = [
    "BilledUnits",
    "ModelPrice",
    "PriceTable",
    "PricingError",
    "builtin_prices",
    "call_cost",
    "default_prices",
    "load_prices",
]

STALE_DAYS = 120
"""Past this age the built-in table's prices may well have changed: ``report`` says so."""

PRICES_ENV = "TOKENLOG_PRICES"
"""The environment variable naming a TOML file of price overrides."""

_DATA_FILE = "mistral.toml"
_TABLE_KEYS = {"as_of", "retrieved", "currency", "source", "models", "cached_input_share", "batch_share"}
_MODEL_KEYS = {
    "input",
    "output",
    "cached_input",
    "batch_share",
    "page",
    "audio_minute",
    "connector_call",
    "aliases",
    "note",
    "from",
}
_PROVIDER_PREFIXES = ("mistral/", "mistralai/")
_VERSION_SUFFIX = re.compile(r"-(?:latest|\d{4}|\d{2}-\d{2})$")


class PricingError(ValueError):
    """A price file is missing, is not TOML, or holds a value that is not a price."""


@dataclass(frozen=True)
class ModelPrice:
    """What one model (or family of models) costs, in USD per million tokens, and per unit.

    ``input`` and ``output`` are ``None`` for a model that is not billed per token (OCR, billed
    per page). ``cached_input`` prices prompt tokens read from the cache; ``page`` an OCR page;
    ``audio_minute`` a minute of audio; ``connector_call`` one call of each connector (by name, as
    ``usage.connectors`` names them). A unit a call used but that has no price here makes its cost
    unknown (``None``), never 0. ``origin`` says where the price came from.
    """

    name: str
    input: float | None
    output: float | None
    note: str = ""
    origin: str = "built-in"
    cached_input: float | None = None
    batch_share: float | None = None
    """The share of the token prices a call served by the batch API pays (0.5: half price)."""
    page: float | None = None
    audio_minute: float | None = None
    connector_call: Mapping[str, float] = field(default_factory=dict)
    since: str | None = None
    """The day (``YYYY-MM-DD``) this price took effect (``from`` in the file); ``None``: always."""
    earlier: tuple[ModelPrice, ...] = ()
    """The model's earlier prices, newest first (``[[models.NAME]]`` entries with older ``from`` dates)."""

    def at(self, when: str) -> ModelPrice:
        """The price in force at ``when`` (an ISO date or timestamp); before the first ``from``, the first one."""
        day = when[:10]
        for price in (self, *self.earlier):
            if price.since is None or price.since <= day:
                return price
        return (self, *self.earlier)[-1]

    def cost(self, prompt_tokens: int, completion_tokens: int, units: BilledUnits | None = None) -> float | None:
        """The cost in USD of these tokens and units, or ``None`` if one of them has no price here.

        Cached tokens are part of ``prompt_tokens``: they are priced at ``cached_input``, the others at ``input``.
        """
        used = units or _NOTHING_MORE
        if self.input is None and self.output is None and not (used.pages or used.audio_seconds):
            return None  # not billed per token, and no unit it is billed by was counted
        batch_prompt, batch_completion = used.batch_prompt_tokens, used.batch_completion_tokens
        share = self.batch_share
        per_million: tuple[tuple[float, float | None], ...] = (
            (prompt_tokens - used.cached_tokens - batch_prompt, self.input),
            (used.cached_tokens, self.cached_input),
            (completion_tokens - batch_completion, self.output),
            (batch_prompt, None if self.input is None or share is None else self.input * share),
            (batch_completion, None if self.output is None or share is None else self.output * share),
        )
        per_unit: tuple[tuple[float, float | None], ...] = (
            (used.pages, self.page),
            (used.audio_seconds / 60, self.audio_minute),
            *((calls, self.connector_call.get(name)) for name, calls in used.connector_calls.items()),
        )
        per_million_usd = 0.0
        for amount, price in per_million:
            if amount:
                if price is None:
                    return None
                per_million_usd += amount * price
        usd = per_million_usd / 1_000_000  # divided once: (12 * 0.5 + 5 * 1.5) / 1e6 stays 1.35e-05
        for amount, price in per_unit:
            if amount:
                if price is None:
                    return None
                usd += amount * price
        return usd


_NOTHING_MORE = BilledUnits()
"""No units beyond the tokens (never changed)."""


class PriceTable:
    """Prices by model name, with the date and source of the built-in table and any overrides."""

    def __init__(
        self,
        models: Mapping[str, ModelPrice],
        aliases: Mapping[str, str],
        *,
        as_of: str,
        source: str,
        overrides: tuple[str, ...] = (),
    ) -> None:
        self.models = dict(models)
        self.aliases = dict(aliases)
        self.as_of = as_of
        self.source = source
        self.overrides = overrides
        self._cache: dict[str, ModelPrice | None] = {}

    def __repr__(self) -> str:
        return f"<PriceTable as of {self.as_of}: {len(self.models)} models, overrides {list(self.overrides)}>"

    def lookup(self, model: str) -> ModelPrice | None:
        """The price entry for a model name as it appears in a log, or ``None`` if it has none."""
        try:
            return self._cache[model]
        except KeyError:
            pass
        found = None
        for name in _candidates(model):
            key = name if name in self.models else self.aliases.get(name)
            if key is not None:
                found = self.models[key]
                break
        self._cache[model] = found
        return found

    def cost(
        self,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        units: BilledUnits | None = None,
        when: str | None = None,
    ) -> float | None:
        """The estimated cost in USD, or ``None`` when the model, or a unit it used, has no price.

        ``when`` (an ISO date or timestamp) picks the model's price in force then; without it, the newest.
        """
        price = self.lookup(model)
        if price is not None and when is not None and price.earlier:
            price = price.at(when)
        return None if price is None else price.cost(prompt_tokens, completion_tokens, units)

    @property
    def dated(self) -> bool:
        """True if some model has earlier prices: a report then prices each call with the one of its day."""
        return any(price.earlier for price in self.models.values())

    def period(self, model: str, when: str) -> str:
        """The ``from`` date of ``model``'s price in force at ``when`` (``""``: undated or no price)."""
        price = self.lookup(model)
        return (price.at(when).since or "") if price is not None and price.earlier else ""

    def age_days(self, today: date | None = None) -> int | None:
        """How many days old the built-in prices are (from the first day of ``as_of``); ``None`` if it is no date."""
        try:
            since = date.fromisoformat(self.as_of + "-01" if len(self.as_of) == 7 else self.as_of)
        except ValueError:
            return None
        return ((today or date.today()) - since).days

    def stale(self, today: date | None = None) -> bool:
        """True when the built-in prices are older than :data:`STALE_DAYS` and no price file was given."""
        age = self.age_days(today)
        return not self.overrides and age is not None and age > STALE_DAYS

    def describe(self) -> str:
        """One line saying where these prices come from, for reports."""
        text = f"prices as of {self.as_of} (USD per million tokens; estimates, see docs/pricing.md)"
        if self.overrides:
            text += f", overridden by {', '.join(self.overrides)}"
        return text

    def updated(self, path: str | os.PathLike[str]) -> PriceTable:
        """A new table: this one with the models of the TOML file at ``path`` added or replaced."""
        origin = os.fspath(path)
        data = _read_toml(Path(origin))
        models, aliases = _parse_table(data, origin)
        return PriceTable(
            {**self.models, **models},
            {**self.aliases, **aliases},
            as_of=self.as_of,
            source=self.source,
            overrides=(*self.overrides, origin),
        )


def _candidates(model: str) -> Iterable[str]:
    """The names to look a model up by, most specific first."""
    name = model.strip().lower()
    for prefix in _PROVIDER_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    yield name
    family = _VERSION_SUFFIX.sub("", name)
    if family != name:
        yield family


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PricingError(f"{path}: no such price file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PricingError(f"{path}: cannot read the price file: {exc}") from None
    return _parse_toml(text, str(path))


def _parse_toml(text: str, origin: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PricingError(f"{origin}: not valid TOML: {exc}") from None


def _parse_table(data: Mapping[str, Any], origin: str) -> tuple[dict[str, ModelPrice], dict[str, str]]:
    """The models and aliases of a parsed price file; raise :class:`PricingError` on a bad value."""
    unknown = sorted(set(data) - _TABLE_KEYS)
    if unknown:
        raise PricingError(f"{origin}: unknown key {unknown[0]!r}, expected {sorted(_TABLE_KEYS)}")
    currency = data.get("currency", "USD")
    if currency != "USD":
        raise PricingError(f"{origin}: currency is {currency!r}, expected 'USD' (tokenlog does not convert)")
    share = _share(data.get("cached_input_share"), f"{origin}: cached_input_share", "the input price")
    batch_share = _share(data.get("batch_share"), f"{origin}: batch_share", "the token prices")
    table = data.get("models", {})
    if not isinstance(table, dict):
        raise PricingError(f"{origin}: 'models' must be a table of [models.NAME] entries")
    models: dict[str, ModelPrice] = {}
    aliases: dict[str, str] = {}
    for raw_name, value in table.items():
        name = raw_name.strip().lower()
        where = f"{origin}: models.{raw_name}"
        entries = value if isinstance(value, list) else [value]
        prices: list[ModelPrice] = []
        for number, entry in enumerate(entries):
            at = f"{where}[{number}]" if isinstance(value, list) else where
            if not isinstance(entry, dict):
                raise PricingError(f"{at} must be a table with input and output prices")
            prices.append(_model_price(name, entry, at, origin, share, batch_share))
            names = entry.get("aliases", [])
            if not isinstance(names, list) or not all(isinstance(alias, str) for alias in names):
                raise PricingError(f"{at}.aliases must be a list of model names")
            aliases.update({alias.strip().lower(): name for alias in names})
        if len(prices) > 1 and any(price.since is None for price in prices):
            raise PricingError(f'{where}: each of its {len(prices)} entries needs a from = "YYYY-MM-DD" date')
        prices.sort(key=lambda price: price.since or "", reverse=True)  # the newest first
        if len({price.since for price in prices}) != len(prices):
            raise PricingError(f"{where}: two entries have the same from date")
        models[name] = dataclasses.replace(prices[0], earlier=tuple(prices[1:]))
    return models, aliases


def _model_price(
    name: str, entry: Mapping[str, Any], where: str, origin: str, share: float | None, batch_share: float | None
) -> ModelPrice:
    unknown = sorted(set(entry) - _MODEL_KEYS)
    if unknown:
        raise PricingError(f"{where} has an unknown key {unknown[0]!r}, expected {sorted(_MODEL_KEYS)}")
    if ("input" in entry) != ("output" in entry):
        raise PricingError(f"{where} needs both input and output (USD per million tokens), or neither")
    note = entry.get("note", "")
    if not isinstance(note, str):
        raise PricingError(f"{where}.note must be a string")
    since = entry.get("from")
    if since is not None:
        since = str(since)  # TOML reads from = 2026-06-01 (unquoted) as a date
        try:
            date.fromisoformat(since)
        except ValueError:
            raise PricingError(f'{where}.from is {since!r}, expected a date: from = "2026-06-01"') from None
    input_price = _price(entry.get("input"), f"{where}.input")
    cached = _price(entry.get("cached_input"), f"{where}.cached_input")
    if cached is None and share is not None and input_price is not None:
        cached = input_price * share
    calls = entry.get("connector_call", {})
    if not isinstance(calls, dict):
        raise PricingError(f"{where}.connector_call must be a table of USD per call by connector name")
    return ModelPrice(
        name,
        input_price,
        _price(entry.get("output"), f"{where}.output"),
        note=note,
        origin=origin,
        cached_input=cached,
        batch_share=_share(entry.get("batch_share"), f"{where}.batch_share", "the token prices")
        if "batch_share" in entry
        else batch_share,
        page=_price(entry.get("page"), f"{where}.page", "USD per page"),
        audio_minute=_price(entry.get("audio_minute"), f"{where}.audio_minute", "USD per minute of audio"),
        connector_call={
            str(k): v
            for k, value in calls.items()
            if (v := _price(value, f"{where}.connector_call.{k}", "USD per call")) is not None
        },
        since=since,
    )


def _share(value: object, where: str, of: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise PricingError(f"{where} is {value!r}, expected a fraction of {of} (0 to 1)")
    return float(value)


def _price(value: object, where: str, unit: str = "USD per million tokens") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise PricingError(f"{where} is {value!r}, expected a number of {unit} (0 or more)")
    return float(value)


_builtin: PriceTable | None = None
_defaults: dict[tuple[str, int], PriceTable] = {}
_lock = fork_safe_lock()


def builtin_prices() -> PriceTable:
    """The table shipped with tokenlog, without overrides."""
    global _builtin
    if _builtin is None:
        text = resources.files(__name__).joinpath(_DATA_FILE).read_text(encoding="utf-8")
        data = _parse_toml(text, "built-in")
        models, aliases = _parse_table(data, "built-in")
        _builtin = PriceTable(models, aliases, as_of=data["as_of"], source=data["source"])
    return _builtin


def load_prices(files: Iterable[str | os.PathLike[str]] = (), *, environ: bool = True) -> PriceTable:
    """The built-in table, then ``$TOKENLOG_PRICES`` (if ``environ``), then each of ``files`` on top."""
    table = builtin_prices()
    overrides = [os.environ.get(PRICES_ENV, "")] if environ else []
    for path in [*overrides, *files]:
        if path:
            table = table.updated(path)
    return table


def default_prices() -> PriceTable:
    """The built-in table with ``$TOKENLOG_PRICES`` applied; re-read when that file changes."""
    path = os.environ.get(PRICES_ENV, "")
    try:
        stamp = os.stat(path).st_mtime_ns if path else 0
    except OSError:
        stamp = -1  # load_prices raises the error that names the file
    with _lock:
        table = _defaults.get((path, stamp))
        if table is None:
            table = _defaults[(path, stamp)] = load_prices()
    return table


def call_cost(model: str, prompt: int, completion: int, units: Mapping[str, object] | None) -> float | None:
    """What one recorded call costs by :func:`default_prices`: its tokens and its units by name (as a record's
    ``cached_tokens``, ``pages``, ``service_tier``, ...); ``None`` when the model or a unit has no price."""
    billed = BilledUnits.of(units, prompt, completion) if units else None  # tokens only: no units to add
    return default_prices().cost(model, prompt, completion, billed)
