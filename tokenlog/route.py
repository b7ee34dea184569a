"""The one route path: a response goes in, one record's fields come out, and its destination gets them.

Which sinks get a record: the call's own (``track_usage(sinks=...)``), else those of the
innermost open session that has any (``usage_session(sinks=...)``), else the process defaults
(``configure(sinks=...)``, by default the CSV file). Every open session counts the record. A
:class:`~tokenlog.UsageRecord` is built only when something needs one (a session that keeps
records, a capture, a sink without the ``write_fields`` capability); otherwise the sink writes the
row from the fields.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from datetime import datetime, timezone
from time import perf_counter
from typing import Literal

from . import config
from ._fork import fork_safe_lock
from .delivery.guard import Destination, destination
from .extract import read_usage
from .identity import recorded
from .limits import Limit
from .record import EMPTY_TAGS, RecordValues, UsageRecord, trusted_record
from .scopes import OpenScopes, current
from .sinks import Sink

__all__ = [
    "Capture",
    "admit",
    "in_force",
    "note_missing_usage",
    "record",
    "release",
    "start_capture",
    "stop_capture",
]

_now = datetime.now
_UTC = timezone.utc


def record(
    obj: object,
    function: str | None,
    started: float | None,
    model: object,
    tags: Mapping[str, str] | None,
    own: Destination | None,
    scopes: OpenScopes | None,
) -> UsageRecord | Literal[True] | None:
    """Record the usage in ``obj`` once.

    ``function`` names the caller, ``started`` (a ``perf_counter()`` reading) gives the latency,
    ``model`` names the model if the response does not (ignored unless it is text), ``tags``
    are the call's own (read-only), ``own`` the call's destination, ``scopes`` the sessions the
    call was made in (``None``: the current ones). Returns the record if one was built (or the
    earlier one of a response recorded already), ``True`` if the row was written from its fields
    alone, ``None`` if ``obj`` carries no usable usage.
    """
    if not config.settings.enabled:
        return None
    reading = read_usage(obj)
    if reading is None:
        return None
    prompt, completion, total, name, request_id, anchor, units = reading
    if scopes is None:
        scopes = current.get()
    if not scopes.sessions:
        session = None
        tags = tags or EMPTY_TAGS
    else:
        session = scopes.name
        tags = types.MappingProxyType({**scopes.tags, **tags}) if tags and scopes.tags else tags or scopes.tags
    fields: RecordValues = (
        _now(_UTC),
        name or (model if type(model) is str and model else "unknown"),
        prompt,
        completion,
        total,
        session,
        function,
        None if started is None else (perf_counter() - started) * 1000.0,
        request_id,
        tags,
    )
    if own is None:
        own = scopes.destination if scopes.destination is not None else _defaults()
    if own.wants_cost:
        units = _priced(fields[1], prompt, completion, units)
    captures = _captures
    # A row with units (cached tokens, pages, ...) goes as a record: write_fields takes the fixed fields only.
    built = trusted_record(*fields, units) if units or captures or scopes.keep_records or not own.takes_fields else None
    # The record is remembered with its response only where a session holds it anyway: keeping one per call
    # measured 0.3 us a call in allocations and deferred frees.
    earlier = recorded.remember(anchor, built if scopes.keep_records else None)
    if earlier is not None:
        return earlier[1] or built or True  # recorded already: no second row
    for scope in scopes.sessions:
        scope.add(fields, built)
    for limit in in_force(scopes):
        limit.charge(fields, units)
    if built is None:
        own.write_fields(fields)
        return True
    if captures:
        for capture in captures:
            capture.records.append(built)
        if not all(capture.write for capture in captures):
            return built  # a capture_usage() block keeps it from the sinks
    own.write(built)
    return built


def _priced(model: str, prompt: int, completion: int, units: dict[str, object] | None) -> dict[str, object] | None:
    """``units`` with the call's ``cost_usd`` (:func:`~tokenlog.pricing.call_cost`; left out if unknown)."""
    from .pricing import call_cost

    cost = call_cost(model, prompt, completion, units)
    return units if cost is None else {**(units or {}), "cost_usd": cost}


def in_force(scopes: OpenScopes) -> tuple[Limit, ...]:
    """The budgets enforced on a call made in ``scopes``: the process's (``configure``), then the scopes' own."""
    budgets = config.settings.budgets
    return budgets + scopes.budgets if scopes.budgets else budgets


def admit(limits: tuple[Limit, ...], model: object, reserve: bool) -> tuple[Limit, ...]:
    """Let a call of ``model`` start under ``limits``, or raise :class:`~tokenlog.BudgetExceeded` (the first budget
    that refuses it; every one is asked). Returns the budgets that hold a place for it, to release when it ends."""
    held: tuple[Limit, ...] = ()
    try:
        for limit in limits:
            if limit.admit(model, reserve):
                held += (limit,)
    except BaseException:
        release(held)
        raise
    return held


def release(limits: tuple[Limit, ...]) -> None:
    """The call that :func:`admit` held places in ``limits`` for has ended: let go of them."""
    for limit in limits:
        limit.release()


def note_missing_usage(scopes: OpenScopes) -> None:
    """Count a call that returned no usage in every open session of ``scopes``."""
    for scope in scopes.sessions:
        scope.add_missing()


_default_route: tuple[tuple[Sink, ...], Destination] | None = None


def _defaults() -> Destination:
    """The destination of the default sinks, made again only when ``configure()`` changed them."""
    global _default_route
    sinks = config.default_sinks()
    cached = _default_route
    if cached is None or cached[0] is not sinks:
        cached = _default_route = (sinks, destination(sinks))
    return cached[1]


class Capture:
    """Records made while a :func:`tokenlog.testing.capture_usage` block is open."""

    def __init__(self, write: bool) -> None:
        self.records: list[UsageRecord] = []
        self.write = write


_captures: tuple[Capture, ...] = ()  # replaced, never changed in place: read without a lock
_captures_lock = fork_safe_lock()


def start_capture(*, write: bool) -> Capture:
    """Send a copy of every record to a new capture (and, unless ``write``, nowhere else)."""
    global _captures
    capture = Capture(write)
    with _captures_lock:
        _captures = (*_captures, capture)
    return capture


def stop_capture(capture: Capture | None = None) -> None:
    """End a capture begun with :func:`start_capture` (``None``: every capture)."""
    global _captures
    with _captures_lock:
        _captures = tuple(c for c in _captures if capture is not None and c is not capture)
