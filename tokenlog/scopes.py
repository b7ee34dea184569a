"""The open usage sessions of each execution context (thread or asyncio task), as one immutable value.

A session entering a block pushes itself (:meth:`OpenScopes.push`) and resets the context variable
when the block ends. What the route needs of the stack (the innermost session's name, the merged
tags, where the rows go, whether any session keeps records) is worked out once, at the push, not
on every record.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from .delivery.guard import Destination
from .limits import Limit
from .record import EMPTY_TAGS, RecordValues, UsageRecord

__all__ = ["NO_SCOPES", "OpenScopes", "Scope", "current"]


class Scope(Protocol):
    """What a scope (a :class:`~tokenlog.UsageSession`) gives the route, and takes from it."""

    name: str | None
    tags: Mapping[str, str]
    instrument: bool
    """True if SDK methods are recorded inside it without a decorator."""
    keep_records: bool
    """True if it keeps every record; else it counts totals only and needs no record built."""
    destination: Destination | None
    """Where its rows go, if it has sinks of its own."""
    budget: Limit | None
    """The budget it enforces, if any."""

    def add(self, fields: RecordValues, record: UsageRecord | None) -> None:
        """Count one record (its ``record`` is built if this scope keeps records)."""

    def add_missing(self) -> None:
        """Count a call that returned no usage."""


@dataclass(frozen=True, slots=True)
class OpenScopes:
    """The scopes open in one context, outermost first, with what the route reads of them."""

    sessions: tuple[Scope, ...]
    name: str | None
    """The innermost session's name: the ``session`` of every record made here."""
    tags: Mapping[str, str]
    """Every session's tags, outermost first (an inner session's value wins), read-only."""
    destination: Destination | None
    """The innermost session with sinks of its own has its rows go there; ``None``: the defaults."""
    keep_records: bool
    instrument: bool
    budgets: tuple[Limit, ...] = ()
    """The budgets of the sessions and decorated calls open here, outermost first: each is enforced."""

    def push(self, scope: Scope) -> OpenScopes:
        """These scopes and ``scope`` inside them."""
        tags = {**self.tags, **scope.tags} if self.tags and scope.tags else (scope.tags or self.tags)
        return OpenScopes(
            (*self.sessions, scope),
            scope.name,
            tags if type(tags) is types.MappingProxyType else types.MappingProxyType(dict(tags)),
            scope.destination if scope.destination is not None else self.destination,
            self.keep_records or scope.keep_records,
            scope.instrument,
            self.budgets if scope.budget is None else self.with_budget(scope.budget).budgets,
        )

    def with_budget(self, budget: Limit) -> OpenScopes:
        """These scopes with ``budget`` enforced too (a decorated call's own); the same if it is already."""
        if budget in self.budgets:
            return self
        return dataclasses.replace(self, budgets=(*self.budgets, budget))

    def including(self, scope: Scope) -> OpenScopes:
        """These scopes, with ``scope`` innermost if it is not among them."""
        return self if scope in self.sessions else self.push(scope)

    def without(self, scope: Scope) -> OpenScopes:
        """These scopes less ``scope`` (a session closed in another context than it was opened in)."""
        rebuilt = NO_SCOPES
        for session in self.sessions:
            if session is not scope:
                rebuilt = rebuilt.push(session)
        # A decorated call's budget, enforced here too, stays; the closed session's own goes.
        kept = tuple(b for b in self.budgets if b is not scope.budget or b in rebuilt.budgets)
        return dataclasses.replace(rebuilt, budgets=kept)


NO_SCOPES = OpenScopes((), None, EMPTY_TAGS, None, False, False)

current: ContextVar[OpenScopes] = ContextVar("tokenlog_scopes", default=NO_SCOPES)
"""The scopes open in this context. A context copied into a task or a bound thread keeps its own."""
