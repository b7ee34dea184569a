"""Budgets: cap what a run, a feature or a whole team spends, and refuse the call that would go past it.

A :class:`Budget` is given to a session (``usage_session(budget=...)``), a decorated function
(``track_usage(budget=...)``) or the whole process (``configure(budget=...)``). Before a call starts (a
decorated function's call, an instrumented SDK method, a ``requests``/``httpx`` POST to a model endpoint) every
budget in force is asked (:meth:`Budget.admit`); one that is spent raises :class:`~tokenlog.BudgetExceeded`
and no request is made. Every recorded call is charged to every budget in force (:meth:`Budget.charge`).

The bound, in one process: a ``max_calls`` budget is never overshot by SDK or HTTP calls, because each one
holds its place while it is in flight; tokens and cost are known only when a call returns, so calls in flight
when a token or cost limit is reached finish and count (at most that many overshoot). A decorated function
whose requests tokenlog does not see (an SDK it does not instrument) is admitted while the budget is not
spent: those in flight overshoot by one call each at most. A stream holds its place until its response
starts; its usage counts when it ends. Shared budgets (``shared=PATH``) count what every process wrote to
the log: processes cannot see each other's calls in flight, so the bound is the limit plus the calls in
flight in all of them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Literal

from ._fork import fork_safe_lock, reset_after_fork
from .errors import BudgetExceeded, counted, user_site, warn
from .format import file_format, utc_timestamp
from .limits import BudgetStatus
from .logs.tail import LogTail, Spent
from .pricing import call_cost, default_prices
from .record import RecordValues

__all__ = ["Budget", "BudgetExceeded", "BudgetStatus"]

Unpriced = Literal["refuse", "count_tokens_only"]

_LIMITS = ("max_calls", "max_tokens", "max_cost_usd")
_INF = float("inf")
_NO_ROWS = Spent()


class Budget:
    """A cap on calls, tokens and estimated cost (any of them; each one given is enforced).

    ``max_cost_usd`` is in US dollars, priced with :func:`tokenlog.pricing.default_prices` (an estimate, not
    a bill); ``max_tokens`` counts total tokens; ``max_calls`` counts recorded calls. When a limit is reached
    the call that reached it returns normally and every later call raises :class:`~tokenlog.BudgetExceeded`
    before its request. ``warn_at`` (a fraction, ``None`` for never) issues one
    :class:`~tokenlog.TokenlogWarning` when that share of a limit is spent.

    ``unpriced``: under a cost limit, a call of a model without a price is refused before its request
    (``"refuse"``, the default: an unpriced call is never free), or counted for its tokens and calls only
    (``"count_tokens_only"``). ``shared`` is a log file (CSV, JSONL or SQLite, e.g. the team's
    ``mistral_usage_log.csv``): the budget then counts every row in it since ``since`` (a ``datetime`` with
    a time zone, or an ISO 8601 date or time; default: every row), whoever wrote it, so that processes and
    people writing to one log share one cap. ``name`` is how messages call it.

    >>> import tokenlog
    >>> budget = tokenlog.Budget(max_calls=2, name="demo")
    >>> with tokenlog.usage_session(sinks=[], budget=budget) as s:
    ...     for _ in range(2):
    ...         _ = s.record({"model": "mistral-small", "usage": {"prompt_tokens": 9, "completion_tokens": 4}})
    >>> budget.status().exceeded, budget.status().remaining
    (True, {'max_calls': 0})
    """

    def __init__(
        self,
        max_cost_usd: float | None = None,
        max_tokens: int | None = None,
        max_calls: int | None = None,
        *,
        warn_at: float | None = 0.8,
        shared: str | os.PathLike[str] | None = None,
        since: datetime | str | None = None,
        unpriced: Unpriced = "refuse",
        name: str | None = None,
    ) -> None:
        self.max_cost_usd = _limit("max_cost_usd", max_cost_usd, float)
        self.max_tokens = _limit("max_tokens", max_tokens, int)
        self.max_calls = _limit("max_calls", max_calls, int)
        self.limits: dict[str, float] = {key: value for key in _LIMITS if (value := getattr(self, key)) is not None}
        if not self.limits:
            raise ValueError("Budget() has no limit: pass max_cost_usd=, max_tokens= or max_calls= (or several)")
        if warn_at is not None and (
            isinstance(warn_at, bool) or not isinstance(warn_at, (int, float)) or not 0 < warn_at <= 1
        ):
            raise ValueError(f"Budget warn_at={warn_at!r}: expected a fraction above 0 and at most 1, or None")
        if unpriced not in ("refuse", "count_tokens_only"):
            raise ValueError(f"Budget unpriced={unpriced!r}: expected 'refuse' or 'count_tokens_only'")
        self.warn_at = warn_at
        self.unpriced: Unpriced = unpriced
        self.since = _since(since)
        if shared is not None:
            file_format(os.fspath(shared), "Budget(shared=...)", "; a shared budget reads a log the sinks write")
        self.shared = None if shared is None else os.path.abspath(os.fspath(shared))
        self.name = name or "Budget(" + ", ".join(f"{k}={v:g}" for k, v in self.limits.items()) + ")"
        self.set_at = user_site()
        self.enforced_in: list[str] = []
        """Where it is enforced: ``usage_session('nightly')``, ``@track_usage on app.ask``, ``configure(...)``."""
        self.reserves = self.max_calls is not None
        self._refuses_unpriced = self.max_cost_usd is not None and unpriced == "refuse"
        self._lock = fork_safe_lock()
        # This process's own count: calls, total tokens, the cost of the priced calls, the unpriced calls.
        self._calls_n = self._tokens_n = self._unpriced_n = 0
        self._cost_n = 0.0
        self._in_flight = 0
        self._over: str | None = None  # the limit that is spent, or "unpriced"; read without the lock
        self._unpriced_model: str | None = None
        self._warned = warn_at is None
        self._alarms = (_INF, _INF, _INF)
        """The counts (calls, tokens, cost) at which a charge looks again (the warning, then the limit)."""
        self._priced: set[str] = set()
        self._tail = None if self.shared is None else LogTail(self.shared, self.since)
        self._log = _NO_ROWS if self._tail is None else self._tail.spent
        """The shared log's totals (zero without one, or while it cannot be read)."""
        self._problem: str | None = None
        self._update()
        reset_after_fork(self)

    def _after_fork_in_child(self) -> None:
        # The parent's calls in flight are not the child's: they return in the parent. What was spent stays
        # counted; a shared budget's reader starts afresh (a pool worker inherits no open file from it anyway).
        self._in_flight = 0

    def __repr__(self) -> str:
        return f"<Budget {self.name!r}: {self.status().used:.0%} used>"

    # -- what the recording core asks (tokenlog.limits.Limit) ---------------------------------------

    def attach(self, where: str) -> None:
        """Note where the budget is enforced, for messages."""
        if where not in self.enforced_in:
            self.enforced_in.append(where)

    def admit(self, model: object, reserve: bool) -> bool:
        """Let a call of ``model`` start, or raise :class:`~tokenlog.BudgetExceeded`; with ``reserve`` (and a
        ``max_calls`` limit) hold its place until :meth:`release`, and return True."""
        if self._tail is not None:
            self._refresh()
        if self._over is not None:
            raise self._refusal(self._over)
        if self._refuses_unpriced and type(model) is str and model not in self._priced:
            self._check_price(model)
        if not self.reserves:
            return False
        if not reserve:  # a check only: the calls made inside it will hold their places
            if self._full():
                raise self._refusal("max_calls")
            return False
        with self._lock:
            full = self._full()
            if not full:
                self._in_flight += 1
        if full:
            raise self._refusal("max_calls")
        return True

    def _full(self) -> bool:
        """No place left for a call: the calls spent and those in flight reach ``max_calls``."""
        return max(self._calls_n, self._log.calls) + self._in_flight >= self.max_calls  # type: ignore[operator]

    def release(self) -> None:
        """A call :meth:`admit` reserved for has returned."""
        with self._lock:
            self._in_flight -= 1

    def charge(self, fields: RecordValues, units: Mapping[str, object] | None) -> None:
        """Count one recorded call."""
        cost: object = None
        if self.max_cost_usd is not None:
            cost = units.get("cost_usd") if units else None
            if cost is None:  # not priced for a CostUSD column already
                cost = call_cost(fields[1], fields[2], fields[3], units)
        with self._lock:
            self._calls_n += 1
            self._tokens_n += fields[4]
            if isinstance(cost, (int, float)):
                self._cost_n += cost
            elif self.max_cost_usd is not None:
                self._unpriced_n += 1
                if self._refuses_unpriced and self._unpriced_model is None:
                    self._unpriced_model = fields[1]
            calls, tokens, money = self._alarms
            if (
                self._calls_n < calls
                and self._tokens_n < tokens
                and self._cost_n < money
                and (cost is not None or self.max_cost_usd is None)
            ):
                return  # below every alarm: the common case
            message = self._update()
        if message:
            warn(message)

    def status(self) -> BudgetStatus:
        """What the budget has spent and has left, now (a shared budget reads what was appended first)."""
        if self._tail is not None:
            self._refresh()
        with self._lock:
            spent = self._spent()
            remaining = {key: max(0.0, limit - spent[key]) for key, limit in self.limits.items()}
            if self.max_calls is not None:
                remaining["max_calls"] = int(remaining["max_calls"])
            if self.max_tokens is not None:
                remaining["max_tokens"] = int(remaining["max_tokens"])
            return BudgetStatus(
                name=self.name,
                calls=int(spent["max_calls"]),
                total_tokens=int(spent["max_tokens"]),
                cost_usd=spent["max_cost_usd"],
                unpriced_calls=max(self._unpriced_n, self._log.unpriced_calls),
                limits=dict(self.limits),
                remaining=remaining,
                used=self._used(spent),
                in_flight=self._in_flight,
                exceeded=self._over is not None,
                source="this process" if self.shared is None or self._problem else self.shared,
                problem=self._problem,
            )

    # -- the counts ----------------------------------------------------------------------------------

    def _spent(self) -> dict[str, float]:
        """Calls, tokens and cost spent: this process's own, or (shared) the log's where that is more."""
        log = self._log
        return {
            "max_calls": max(self._calls_n, log.calls),
            "max_tokens": max(self._tokens_n, log.total_tokens),
            "max_cost_usd": max(self._cost_n, log.cost_usd),
        }

    def _fractions(self, spent: Mapping[str, float]) -> dict[str, float]:
        """The share of each limit that is spent (a limit of 0: all of it)."""
        return {key: spent[key] / limit if limit else 1.0 for key, limit in self.limits.items()}

    def _used(self, spent: Mapping[str, float]) -> float:
        return max(self._fractions(spent).values())

    def _update(self) -> str | None:
        """Decide (under the lock) whether a limit is spent and when a charge looks again; the warning to give
        once ``warn_at`` is reached."""
        spent = self._spent()
        if self._unpriced_model is not None or (self._log.unpriced_calls and self._refuses_unpriced):
            self._over = "unpriced"
        else:
            self._over = next((key for key, limit in self.limits.items() if spent[key] >= limit), None)
        message = None
        fractions = self._fractions(spent)
        key = max(fractions, key=fractions.__getitem__)  # the limit nearest to being spent
        if not self._warned and fractions[key] >= self.warn_at:  # type: ignore[operator]
            self._warned = True
            message = (
                f"tokenlog {self._described()} has used {fractions[key]:.0%} of {key}={self.limits[key]:g} "
                f"({_amount(key, spent[key])}); calls are refused once it is spent"
            )
        share = 1.0 if self._warned else self.warn_at
        self._alarms = tuple(  # type: ignore[assignment]
            _INF if (limit := self.limits.get(key)) is None else limit * share  # type: ignore[operator]
            for key in _LIMITS
        )
        return message

    def _refresh(self) -> None:
        """Read what other processes appended to the shared log; if it cannot be read, warn once and go on
        with this process's own count."""
        assert self._tail is not None
        if self._tail.unchanged():
            return  # nothing appended: one stat, no lock
        message = warning = None
        with self._lock:
            try:
                log = self._tail.refresh()
                if self._problem is not None:
                    self._problem = None
            except Exception as exc:  # a budget never breaks the call: fall back to our own count
                if self._problem is None:
                    message = (
                        f"tokenlog {self._described()} cannot read its shared log {self.shared}: {exc}; it counts "
                        "this process's calls only until the log can be read again (check the path and its "
                        "permissions)"
                    )
                self._problem = str(exc)
                log = _NO_ROWS
            if log is not self._log:  # the same object when nothing was appended
                self._log = log
                warning = self._update()
        for text in (message, warning):
            if text:
                warn(text)

    def _check_price(self, model: str) -> None:
        if default_prices().lookup(model) is not None:
            self._priced.add(model)
            return
        raise self._unpriced(
            f"cannot price a call of model {model!r}: tokenlog has no price for it, so the cost cap could not be "
            "kept; no request was made. Add the model's price to the file $TOKENLOG_PRICES names (see the pricing "
            "docs), or pass Budget(..., unpriced='count_tokens_only') to count such calls by their tokens and calls"
        )

    def _unpriced(self, problem: str) -> BudgetExceeded:
        return BudgetExceeded(
            f"tokenlog {self._described()} {problem}",
            budget=self,
            limit="unpriced",
            spent=None,
            allowed=None,
            where=self._where(),
        )

    def _refusal(self, limit: str) -> BudgetExceeded:
        if limit == "unpriced":
            model = self._unpriced_model or "a model without a price (in the shared log)"
            return self._unpriced(
                f"is stopped: a recorded call of {model!r} could not be priced, so the cost cap cannot be kept; no "
                "request was made. Add the model's price to $TOKENLOG_PRICES, or use "
                "Budget(..., unpriced='count_tokens_only')"
            )
        with self._lock:
            spent = self._spent()[limit]
            in_flight = self._in_flight
        allowed = self.limits[limit]
        flight = f" and {in_flight:,} in flight" if limit == "max_calls" and in_flight else ""
        return BudgetExceeded(
            f"tokenlog {self._described()} is spent: {_amount(limit, spent)}{flight} of {limit}={allowed:g}; no "
            "request was made. Raise the limit or use a new Budget to go on",
            budget=self,
            limit=limit,
            spent=spent,
            allowed=allowed,
            where=self._where(),
        )

    def _where(self) -> str:
        places = ", ".join(self.enforced_in)
        return f"set at {self.set_at}" + (f", enforced in {places}" if places else "")

    def _described(self) -> str:
        shared = f", shared through {self.shared}" if self.shared else ""
        return f"budget {self.name!r} ({self._where()}{shared})"


def _limit(name: str, value: object, kind: type) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0:
        raise ValueError(f"Budget {name}={value!r}: expected a number of 0 or more, or None")
    if kind is int and value != int(value):
        raise ValueError(f"Budget {name}={value!r}: expected a whole number")
    return float(value) if kind is float else int(value)


def _since(since: datetime | str | None) -> str | None:
    """``since`` as a UTC timestamp in tokenlog's text (rows compare as text)."""
    if since is None:
        return None
    if isinstance(since, datetime):
        if since.utcoffset() is None:
            raise ValueError(
                f"Budget since={since!r} has no time zone: pass an aware datetime (datetime.now(timezone.utc))"
            )
        return since.astimezone(timezone.utc).isoformat(timespec="microseconds")
    if isinstance(since, str):
        text = since.strip()
        stamp = utc_timestamp(text if "T" in text or " " in text else text + "T00:00:00+00:00")
        if stamp is not None:
            return stamp
    raise ValueError(
        f"Budget since={since!r}: expected an ISO 8601 date or time with a UTC offset (2026-06-01, "
        "2026-06-01T09:00:00+00:00) or an aware datetime"
    )


def _amount(limit: str, value: float) -> str:
    if limit == "max_cost_usd":
        return f"${value:,.4f}"
    return counted(int(value), "token" if limit == "max_tokens" else "call")
