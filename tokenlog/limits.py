"""What the recording core asks of a budget, as a Protocol defined low: the calls, the route and the scopes use it,
and :class:`tokenlog.Budget` (in :mod:`tokenlog.budget`, above them) is what implements it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from .record import RecordValues

__all__ = ["BudgetStatus", "Limit"]


@dataclass(frozen=True)
class BudgetStatus:
    """What a budget has spent and has left, at one moment (:meth:`tokenlog.Budget.status`).

    ``calls``, ``total_tokens`` and ``cost_usd`` are what was spent (in a shared budget: by every process that
    wrote to the shared log, or this process's own count if that is more); ``cost_usd`` leaves out the
    ``unpriced_calls`` (counted for their tokens only, with ``unpriced="count_tokens_only"``). ``remaining`` maps
    each limit the budget has (``max_calls``, ``max_tokens``, ``max_cost_usd``) to what is left of it (0 at least);
    ``used`` is the largest fraction of a limit spent (1.0 or more: spent). ``in_flight`` counts calls admitted and
    not returned yet. ``exceeded`` is True once a limit is reached, or a call could not be priced under a cost
    budget: then every new call is refused. ``source`` says where the counts came from (``"this process"``, or
    the shared log's path); ``problem`` why a shared log could not be read, if it could not.
    """

    name: str
    calls: int
    total_tokens: int
    cost_usd: float
    unpriced_calls: int
    limits: Mapping[str, float]
    remaining: Mapping[str, float]
    used: float
    in_flight: int
    exceeded: bool
    source: str
    problem: str | None = None


class Limit(Protocol):
    """What the recording core asks of a budget (:class:`tokenlog.Budget`): may a call start, and what it spent."""

    reserves: bool
    """True if a call holds a place in the budget while it is in flight (a budget with ``max_calls``)."""

    def attach(self, where: str) -> None:
        """Say where the budget is enforced (``usage_session('nightly')``, ``@track_usage on f``, ...)."""

    def admit(self, model: object, reserve: bool) -> bool:
        """Raise :class:`~tokenlog.BudgetExceeded` if a call of ``model`` (``None``: not known yet) may not
        start; else, with ``reserve``, hold its place until :meth:`release` and return True."""

    def release(self) -> None:
        """A call that :meth:`admit` reserved for has ended (recorded, or not)."""

    def charge(self, fields: RecordValues, units: Mapping[str, object] | None) -> None:
        """Count what one recorded call spent."""

    def status(self) -> BudgetStatus:
        """What it has spent and has left."""
