"""@track_usage: record the usage of whatever a function returns, and of the SDK calls made inside it.

One wrapper factory (:func:`call_wrapper`) serves the decorator and the instrumented SDK methods,
sync and async: a :class:`Tracker` says whether a call is recorded (:meth:`Tracker.enter`) and
in whose name; the :class:`Call` it returns is the call context that SDK calls made inside it
report to, and observes what the call returned.
"""

from __future__ import annotations

import inspect
import os
import types
from collections.abc import Callable, Coroutine, Iterable, Mapping
from contextvars import ContextVar
from time import perf_counter
from types import CoroutineType
from typing import Any, TypeVar, overload

import wrapt

from . import config, route, streams
from .delivery.guard import Destination, destination
from .errors import SinkError, warn
from .scopes import OpenScopes, current
from .sinks import Sink, resolve_sink

__all__ = ["Call", "Tracker", "call_wrapper", "current_call", "track_usage"]

F = TypeVar("F", bound=Callable[..., Any])
SinkSpec = Sink | str | os.PathLike[str]
Wrapper = Callable[[Callable[..., Any], object, tuple[Any, ...], dict[str, Any]], Any]


class Tracker:
    """What one decorated function (or one instrumented SDK method) records with.

    Its name, its model fallback, its tags and its destination, decided when it is made; it
    also says once when the function returned no usage.
    """

    def __init__(
        self,
        function: str,
        model: str | None,
        tags: Mapping[str, str] | None,
        destination: Destination | None,
    ) -> None:
        self.function = function
        self.model = model
        self.tags = types.MappingProxyType({str(k): str(v) for k, v in tags.items()}) if tags else None
        self.destination = destination
        self._warned = False

    def enter(self) -> Call | None:
        """The context of a call about to start; ``None`` to call straight through (recording is off)."""
        return Call(self) if config.settings.enabled else None

    def record(self, result: object, started: float, model: object, scopes: OpenScopes | None) -> bool:
        """Record ``result`` (a response or a stream chunk) in this tracker's name; True if a record was made.

        Never raises, but in strict mode (a sink's :class:`~tokenlog.SinkError`).
        """
        try:
            return route.record(result, self.function, started, model, self.tags, self.destination, scopes) is not None
        except SinkError:
            raise  # strict mode: the user asked for it
        except Exception as exc:  # a bug of ours must never break the user's call
            warn(f"tokenlog failed to record a call of {self.function}: {exc!r}")
            return False

    def missing_usage(self, result: object, scopes: OpenScopes) -> None:
        """A call ended with no usage to record: count it, and say so once per function."""
        if not config.settings.enabled:
            return
        route.note_missing_usage(scopes)
        if not self._warned:
            self._warned = True
            streamed = isinstance(result, type)  # a stream reports its type once it has ended
            kind: type = result if isinstance(result, type) else type(result)
            hint = (
                "; a stream carries usage only when asked, e.g. stream_options={'include_usage': True} with "
                "OpenAI-compatible APIs"
                if streamed
                else ""
            )
            warn(
                f"{self.function} returned a {kind.__qualname__} without token usage, so no row was "
                f"written (shown once per function){hint}"
            )


class Call:
    """One recorded call in progress: the context SDK calls made inside it report to."""

    __slots__ = ("outer", "recorded", "started", "tracker")

    def __init__(self, tracker: Tracker, outer: Call | None = None) -> None:
        self.tracker = tracker
        self.outer = outer
        """The decorated call this SDK call was made in: what it records counts for that call too."""
        self.started = perf_counter()
        self.recorded = False

    def observe(self, result: Any, kwargs: Mapping[str, Any]) -> Any:
        """Record ``result``'s usage; return ``result`` itself, or a recording proxy for a stream.

        A stream, or a record made by an SDK call inside this one, counts for this call: the
        call is not "without usage" then.
        """
        kind = _result_kinds.get(type(result)) or _result_kind(type(result))
        tracker = self.tracker
        if kind is _RESPONSE:
            if tracker.record(result, self.started, tracker.model or kwargs.get("model"), None):
                self._recorded()
            elif not self.recorded:
                tracker.missing_usage(result, current.get())
            return result
        if kind is _STREAM:
            self._recorded()
            fallback = tracker.model or kwargs.get("model")
            return streams.observe_stream(
                result, tracker, self.started, fallback if isinstance(fallback, str) else None
            )
        return self._awaited(result, kwargs)  # a coroutine from a plain def (openai's async methods)

    def _recorded(self) -> None:
        self.recorded = True
        if self.outer is not None:
            self.outer.recorded = True

    async def _awaited(self, coroutine: Coroutine[Any, Any, Any], kwargs: Mapping[str, Any]) -> Any:
        token = current_call.set(self)
        try:
            result = await coroutine
        finally:
            current_call.reset(token)
        return self.observe(result, kwargs)


current_call: ContextVar[Call | None] = ContextVar("tokenlog_current_call", default=None)
"""The innermost recorded call running in this context, if any: SDK calls inside it record for it."""

_RESPONSE, _STREAM, _COROUTINE = "response", "stream", "coroutine"
_result_kinds: dict[type, str] = {}
"""What a type of result is, decided once per type."""


def _result_kind(kind: type) -> str:
    found = _STREAM if streams.is_stream_type(kind) else _COROUTINE if issubclass(kind, CoroutineType) else _RESPONSE
    if len(_result_kinds) < 10_000:  # types made on the fly must not grow this without bound
        _result_kinds[kind] = found
    return found


def call_wrapper(enter: Callable[[], Call | None], asynchronous: bool) -> Wrapper:
    """The wrapt wrapper of a recorded callable: ``enter()`` decides per call, the driver does the rest.

    One driver for plain callables and one for ``async def`` ones; they differ only by the ``await``.
    """
    if asynchronous:

        async def run(call: Call, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            token = current_call.set(call)
            try:
                result = await wrapped(*args, **kwargs)
            finally:
                current_call.reset(token)
            return call.observe(result, kwargs)

        def run_async(
            wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            call = enter()
            return wrapped(*args, **kwargs) if call is None else run(call, wrapped, args, kwargs)

        return run_async

    def run_sync(wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = enter()
        if call is None:
            return wrapped(*args, **kwargs)
        token = current_call.set(call)
        try:
            result = wrapped(*args, **kwargs)
        finally:
            current_call.reset(token)
        return call.observe(result, kwargs)

    return run_sync


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
) -> F | Callable[[F], F]:
    """Record the token usage of every successful call of the decorated function.

    Works on plain and ``async`` functions, methods, class and static methods, generators and
    async generators (a row is written when an item carrying usage passes through). The
    function's return value comes back unchanged (the same object); an exception passes
    through untouched and writes nothing.

    ``sink``/``sinks`` send this function's rows there instead of the session's or the
    default CSV file; ``model`` names the model when the response does not (else the call's
    ``model=`` argument is used); ``tags`` are added to each row; ``name`` replaces the
    function's qualified name in the ``function`` field.

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
        tracker = Tracker(name or _qualified_name(wrapped), model, tags, own)
        target = getattr(wrapped, "__func__", wrapped)  # a classmethod/staticmethod object
        wrapper = call_wrapper(tracker.enter, inspect.iscoroutinefunction(target))
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
