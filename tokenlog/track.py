"""@track_usage: record the usage of whatever a function returns, and of the SDK and HTTP calls made inside it.

The decorator makes a :class:`~tokenlog.calls.Tracker` per function and wraps it with the one
wrapper factory (:func:`~tokenlog.calls.call_wrapper`). While a decorated call runs, the SDK and
HTTP methods that :mod:`tokenlog.instrumentation` patches record for it, whatever the function
returns: each decorated call makes sure the patches are in (a flag read, once they are).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

import wrapt

from . import config, instrumentation
from .calls import Call, Tracker, budgeted, call_wrapper, current_call
from .delivery.guard import destination
from .limits import Limit
from .sinks import Sink, resolve_sink

__all__ = ["Call", "Tracker", "call_wrapper", "current_call", "track_usage"]

F = TypeVar("F", bound=Callable[..., Any])
SinkSpec = Sink | str | os.PathLike[str]


class _DecoratedTracker(Tracker):
    """A decorated function's tracker: its calls also have the SDK and HTTP methods patched."""

    def enter(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Call | None:
        if not config.settings.enabled:
            return None
        if not instrumentation.patching():
            instrumentation.ensure_patched()  # after uninstrument() (or testing.reset()): patch again
        return self.start(kwargs)


@overload
def track_usage(func: F, /) -> F: ...


@overload
def track_usage(
    func: None = None,
    /,
    *,
    sink: SinkSpec | None = None,
    sinks: Iterable[SinkSpec] | None = None,
    model: str | None = None,
    tags: Mapping[str, str] | None = None,
    name: str | None = None,
    budget: Limit | None = None,
) -> Callable[[F], F]: ...


def track_usage(
    func: F | None = None,
    /,
    *,
    sink: SinkSpec | None = None,
    sinks: Iterable[SinkSpec] | None = None,
    model: str | None = None,
    tags: Mapping[str, str] | None = None,
    name: str | None = None,
    budget: Limit | None = None,
) -> F | Callable[[F], F]:
    """Record the token usage of every successful call of the decorated function.

    Works on plain and ``async`` functions, methods, class and static methods, generators and
    async generators (a row is written when an item carrying usage passes through). The
    function's return value comes back unchanged (the same object); an exception passes
    through untouched and writes nothing.

    ``sink``/``sinks`` send this function's rows there instead of the session's or the
    default CSV file; ``model`` names the model when the response does not (else the call's
    ``model=`` argument is used); ``tags`` are added to each row; ``name`` replaces the
    function's qualified name in the ``function`` field. ``budget`` (a :class:`~tokenlog.Budget`) is enforced
    on each call and on every SDK and HTTP call made inside it: once it is spent, a call raises
    :class:`~tokenlog.BudgetExceeded` before it starts.

    >>> import tokenlog
    >>> sink = tokenlog.MemorySink()
    >>> @tokenlog.track_usage(sinks=[sink], tags={"feature": "summary"})
    ... def ask(prompt):
    ...     return {"model": "mistral-small", "usage": {"prompt_tokens": 9, "completion_tokens": 4}}
    >>> _ = ask("hi")
    >>> sink.records[0].total_tokens, sink.records[0].tags["feature"]
    (13, 'summary')
    """
    specs = ([] if sink is None else [sink]) + ([] if sinks is None else list(sinks))
    own = destination(resolve_sink(spec) for spec in specs) if (sink is not None or sinks is not None) else None

    def decorate(wrapped: F) -> F:
        tracker = _DecoratedTracker(name or _qualified_name(wrapped), model, tags, own)
        target = getattr(wrapped, "__func__", wrapped)  # a classmethod/staticmethod object
        asynchronous = inspect.iscoroutinefunction(target)
        wrapper = call_wrapper(tracker.enter, asynchronous)
        if budget is not None:  # decided here, once: a function without a budget pays nothing for budgets
            budget.attach(f"@track_usage on {tracker.function}")
            wrapper = budgeted(wrapper, budget, asynchronous)
        return wrapt.decorator(proxy=_FunctionWrapper)(wrapper)(wrapped)  # type: ignore[return-value]

    return decorate if func is None else decorate(func)


class _FunctionWrapper(wrapt.FunctionWrapper):  # type: ignore[type-arg,misc,unused-ignore]
    """wrapt's FunctionWrapper, minus a probe that costs each call of a plain function 0.2 us.

    Called unbound, wrapt's ``__call__`` (C) looks up ``__self__`` on the wrapped object on every
    call, in case it was a bound method; a plain function has none, so each call raised and
    cleared an AttributeError. For a plain function (checked once, here) this calls the wrapper
    as wrapt would, with no instance: a wrapt pass-through took 0.44 us a call with wrapt's
    ``__call__``, 0.21 us with this one (timeit; docs/benchmarks.md times both). Everything
    else (other bindings, methods bound through ``__get__``, introspection) is wrapt's own.
    Passed to ``wrapt.decorator`` as its ``proxy``.
    """

    __slots__ = ("_self_plain",)

    def __init__(self, wrapped: Any, wrapper: Any, enabled: Any = None) -> None:
        super().__init__(wrapped, wrapper, enabled)
        plain = self._self_binding == "function" and enabled is None and not hasattr(wrapped, "__self__")
        self._self_plain = (wrapper, wrapped) if plain else None  # one slot read a call: proxy reads are slow

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        plain = self._self_plain
        if plain is not None:
            return plain[0](plain[1], None, args, kwargs)
        return super().__call__(*args, **kwargs)


def _qualified_name(wrapped: Callable[..., Any]) -> str:
    qualname = getattr(wrapped, "__qualname__", None) or getattr(wrapped, "__name__", None) or repr(wrapped)
    module = getattr(wrapped, "__module__", None)
    return f"{module}.{qualname}" if module else str(qualname)
