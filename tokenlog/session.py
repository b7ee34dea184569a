"""usage_session: scope a block of code, total what it spends, route its rows."""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import html
import os
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ParamSpec, TypedDict, TypeVar

if TYPE_CHECKING:
    from typing_extensions import Unpack


from . import config, route
from ._fork import fork_safe_lock
from ._html import money, table
from .delivery.guard import Destination, destination, guard
from .extract import response_id
from .identity import recorded
from .instrumentation import ensure_patched
from .limits import BudgetStatus, Limit
from .record import BilledUnits, RecordValues, UsageRecord, has_units
from .scopes import OpenScopes, current
from .sinks import Sink, resolve_sink

__all__ = ["UsageSession", "UsageTotals", "usage_session"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(repr=False)
class UsageTotals:
    """Running totals: how many calls, the tokens they spent, and the units beyond tokens that they used.

    ``units`` adds up the units (:class:`~tokenlog.pricing.BilledUnits`); ``cached_tokens`` (part of
    ``prompt_tokens``: the ones read from the prompt cache), ``pages``, ``audio_seconds`` and ``connector_calls``
    (by connector name) read from it, and are 0 or empty when no call had any.
    """

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    units: BilledUnits = field(default_factory=BilledUnits)

    @property
    def cached_tokens(self) -> int:
        return self.units.cached_tokens

    @property
    def pages(self) -> int:
        return self.units.pages

    @property
    def audio_seconds(self) -> float:
        return self.units.audio_seconds

    @property
    def connector_calls(self) -> dict[str, int]:
        return self.units.connector_calls

    def _add(self, prompt: int, completion: int, total: int, record: UsageRecord | None) -> None:
        self.calls += 1
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.total_tokens += total
        if record is not None and has_units(record):
            self.units.add_record(record)

    def __repr__(self) -> str:
        """The counts, then only the units some call used (a chat session reads as before)."""
        shown = [f"{name}={getattr(self, name)!r}" for name in _COUNTS]
        shown += [f"{f.name}={v!r}" for f in dataclasses.fields(self.units) if (v := getattr(self.units, f.name))]
        return f"UsageTotals({', '.join(shown)})"


_COUNTS = ("calls", "prompt_tokens", "completion_tokens", "total_tokens")


def _sum_or_unknown(costs: Iterable[float | None]) -> float | None:
    """The sum of ``costs``, or ``None`` (unknown, never 0) if any of them is."""
    total = 0.0
    for cost in costs:
        if cost is None:
            return None
        total += cost
    return total


def _counts(totals: UsageTotals) -> list[str]:
    return [f"{getattr(totals, name):,}" for name in _COUNTS]


class _Total:
    """A read-only view of one of a session's running totals (``session.calls`` reads ``session._totals.calls``)."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, session: UsageSession | None, owner: type | None = None) -> int:
        return getattr(session._totals, self._name) if session is not None else 0


class UsageSession:
    """What one block of code spent; made by :func:`usage_session`.

    Counters (``calls``, ``prompt_tokens``, ``completion_tokens``, ``total_tokens``) and
    ``by_model`` are live and safe to read from any thread. ``records`` lists every record in
    the order it was made (and stays empty with ``keep_records=False``: a session around a
    service's main loop then keeps its totals only, in constant memory). ``calls_without_usage``
    counts tracked calls that returned no usage (so no row could be written).
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        sinks: Iterable[Sink | str | os.PathLike[str]] | None = None,
        tags: Mapping[str, str] | None = None,
        instrument: bool = True,
        keep_records: bool = True,
        budget: Limit | None = None,
    ) -> None:
        self.name = name
        self.instrument = instrument
        self.keep_records = keep_records
        self.tags: Mapping[str, str] = types.MappingProxyType({str(k): str(v) for k, v in (tags or {}).items()})
        self.records: list[UsageRecord] = []
        self.calls_without_usage = 0
        self._totals = UsageTotals()
        self._by_model: dict[str, UsageTotals] = {}
        self._lock = fork_safe_lock()
        specs = () if sinks is None else tuple(sinks)  # any iterable, a generator included: read once
        self._sinks = None if sinks is None else tuple(resolve_sink(spec) for spec in specs)
        self._owned = [sink for sink, spec in zip(self._sinks or (), specs, strict=True) if sink is not spec]
        """Sinks this session made from paths: closed when it ends."""
        self.destination: Destination | None = None if self._sinks is None else destination(self._sinks)
        self._token: contextvars.Token[OpenScopes] | None = None
        self.budget = budget
        """The :class:`~tokenlog.Budget` enforced inside the block (with every enclosing one), if any."""
        if budget is not None:
            budget.attach(f"usage_session({name!r})" if name is not None else "usage_session()")

    def __repr__(self) -> str:
        return f"<UsageSession {self.name!r}: {self.calls} calls, {self.total_tokens} tokens>"

    def _repr_html_(self) -> str:
        """A notebook shows a session as a table: its totals by model, its total, its budget if it has one."""
        by_model = self.by_model
        costs = self._costs(by_model)
        rows = [[model, *_counts(totals), money(costs[model])] for model, totals in sorted(by_model.items())]
        rows.append(["total", *_counts(self._totals), money(_sum_or_unknown(costs.values()))])
        caption = f"usage_session {self.name!r}" if self.name is not None else "usage_session"
        shown = table(["model", "calls", "prompt", "completion", "total tokens", "estimated cost"], rows, None, caption)
        status = self.budget_status
        if status is not None:
            left = ", ".join(f"{key} {value:g}" for key, value in status.remaining.items())
            shown += f"<p>{html.escape(status.name)}: {status.used:.0%} used; left: {html.escape(left)}"
            shown += "; exceeded</p>" if status.exceeded else "</p>"
        if self.calls_without_usage:
            shown += f"<p>{self.calls_without_usage:,} calls returned no usage.</p>"
        return shown

    # -- totals --------------------------------------------------------------------------

    calls = _Total("Recorded calls (responses with usage).")
    prompt_tokens = _Total("Prompt (input) tokens of all recorded calls.")
    completion_tokens = _Total("Completion (output) tokens of all recorded calls.")
    total_tokens = _Total("Total tokens of all recorded calls, as the responses reported them.")

    @property
    def by_model(self) -> dict[str, UsageTotals]:
        """A snapshot of the totals per model."""
        with self._lock:
            return {
                model: dataclasses.replace(
                    totals, units=dataclasses.replace(totals.units, connector_calls=dict(totals.connector_calls))
                )
                for model, totals in self._by_model.items()
            }

    @property
    def budget_status(self) -> BudgetStatus | None:
        """What the session's budget has spent and has left (:meth:`tokenlog.Budget.status`); ``None`` without one."""
        return None if self.budget is None else self.budget.status()

    @property
    def cost(self) -> float | None:
        """The estimated cost in USD of the recorded calls, or ``None`` if a model has no known price.

        Prices come from :func:`tokenlog.pricing.default_prices`: tokenlog's dated table of Mistral
        prices, with the overrides in ``$TOKENLOG_PRICES``. An estimate, not a bill.

        >>> with usage_session(sinks=[]) as s:
        ...     _ = s.record({"model": "mistral-large", "usage": {"prompt_tokens": 1000, "completion_tokens": 0}})
        >>> s.cost                  # 1,000 tokens at Mistral Large's input price
        0.0005
        >>> _ = s.record({"model": "my-finetune", "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
        >>> s.cost is None          # unknown, never 0
        True
        """
        return _sum_or_unknown(self._costs(self.by_model).values())

    @staticmethod
    def _costs(by_model: Mapping[str, UsageTotals]) -> dict[str, float | None]:
        """The estimated cost of each model's calls in a snapshot of ``by_model`` (``None``: no price)."""
        from .pricing import default_prices

        prices = default_prices()
        return {
            model: prices.cost(model, totals.prompt_tokens, totals.completion_tokens, totals.units)
            for model, totals in by_model.items()
        }

    # -- recording -----------------------------------------------------------------------

    def record(self, obj: object, *, model: str | None = None) -> UsageRecord | None:
        """Record the usage in any response by hand (an SDK object, a ``dict``, an HTTP response).

        Returns the record, the earlier one if ``obj`` was recorded already, or ``None`` when
        ``obj`` carries no valid usage, or is the JSON of an HTTP reply recorded already (``requests``
        and ``httpx`` calls inside a session are recorded by themselves: recording their
        ``.json()`` again adds nothing). Inside the block the record joins every open session;
        called after the block, it still joins this one.

        >>> with usage_session("by-hand") as s:
        ...     r = s.record({"model": "mistral-small", "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
        >>> (s.calls, s.total_tokens, r.session)
        (1, 7, 'by-hand')
        """
        request_id = response_id(obj)
        if request_id is not None and recorded.replied(request_id):
            return None  # the JSON of an HTTP reply recorded inside the session already: the same call
        scopes = dataclasses.replace(current.get().including(self), keep_records=True)  # the caller wants the record
        made = route.record(obj, None, None, model, None, None, scopes)
        return made if isinstance(made, UsageRecord) else None

    def bind(self, fn: Callable[P, R]) -> Callable[P, R]:
        """``fn``, made to run inside this session wherever it is called (threads, pools).

        Threads do not inherit context variables, so work submitted to a pool would escape the
        session; bind it: ``pool.submit(session.bind(ask), prompt)``,
        ``pool.map(session.bind(ask), prompts)``.
        """
        scopes = current.get().including(self)

        @functools.wraps(fn)
        def bound(*args: P.args, **kwargs: P.kwargs) -> R:
            token = current.set(scopes)
            try:
                return fn(*args, **kwargs)
            finally:
                current.reset(token)

        return bound

    def add(self, fields: RecordValues, record: UsageRecord | None) -> None:
        """Count one record, given as its fields (and the record itself when one was built)."""
        model, prompt, completion, total = fields[1], fields[2], fields[3], fields[4]
        with self._lock:
            if self.keep_records and record is not None:
                self.records.append(record)
            self._totals._add(prompt, completion, total, record)
            totals = self._by_model.get(model)
            if totals is None:
                totals = self._by_model[model] = UsageTotals()
            totals._add(prompt, completion, total, record)

    def add_missing(self) -> None:
        """Count a call that returned no usage."""
        with self._lock:
            self.calls_without_usage += 1

    # -- the block -----------------------------------------------------------------------

    def __enter__(self) -> UsageSession:
        if self._token is not None:
            raise RuntimeError(f"{self!r} is already open; use one usage_session() per block")
        if self.instrument:
            ensure_patched()
        self._token = current.set(current.get().push(self))
        return self

    def __exit__(self, *exc_info: object) -> None:
        token, self._token = self._token, None
        try:
            if token is not None:
                current.reset(token)
        except ValueError:  # exited in another context than it was entered in
            current.set(current.get().without(self))
        self._finish()

    async def __aenter__(self) -> UsageSession:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__(*exc_info)

    def _finish(self) -> None:
        # The sinks this block's rows went to: write what they hold back (kept or buffered rows).
        for sink in self._sinks if self._sinks is not None else config.created_default_sinks():
            guard(sink).flush()
        for sink in self._owned:
            sink.close()


class SessionOptions(TypedDict, total=False):
    """The keyword arguments of :func:`usage_session`, as :class:`UsageSession` takes them."""

    sinks: Iterable[Sink | str | os.PathLike[str]] | None
    tags: Mapping[str, str] | None
    instrument: bool
    keep_records: bool
    budget: Limit | None


def usage_session(name: str | None = None, **options: Unpack[SessionOptions]) -> UsageSession:
    """Scope a block: every record made inside it joins this session (and the enclosing ones).

    Works with ``with`` and ``async with``. asyncio tasks started inside the block belong to it;
    other threads do not, unless you :meth:`~UsageSession.bind` the function you hand them.
    ``sinks``, ``tags``, ``instrument`` and ``keep_records`` are keywords (see :class:`SessionOptions`).
    With ``sinks=[...]`` the block's rows go to those sinks instead of the defaults (a path or
    ``scheme://`` string names one, see :func:`~tokenlog.sinks.resolve_sink`); when the block
    ends, the sinks its rows went to write what they hold back. ``tags`` are added to every
    record made inside.

    With ``instrument=True`` (the default) the SDK methods tokenlog knows (see
    :mod:`tokenlog.instrumentation`) are recorded inside the block with no decorator; pass
    ``instrument=False`` to record only decorated functions and ``record()``.

    ``budget=tokenlog.Budget(...)`` enforces a budget on every call made inside the block (see
    :class:`~tokenlog.Budget`): once it is spent, a call raises :class:`~tokenlog.BudgetExceeded` before
    any request is made.

    ``keep_records=False`` keeps the totals (``calls``, the token counts, ``by_model``,
    ``cost``) and not each record: ``records`` stays empty and the session's memory stays the
    same however many calls it sees. Use it for a session around a long-running service.

    >>> import tokenlog
    >>> with tokenlog.usage_session("nightly", sinks=[tokenlog.MemorySink()]) as s:
    ...     _ = s.record({"model": "mistral-large", "usage": {"prompt_tokens": 10, "completion_tokens": 3}})
    >>> s.by_model["mistral-large"].total_tokens
    13
    """
    return UsageSession(name, **options)
