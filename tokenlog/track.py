"""@track_usage: record the usage of whatever a function returns."""

from __future__ import annotations

import inspect
import os
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar, overload

import wrapt

from . import _context, config, route, streams
from .errors import SinkError, TokenlogWarning
from .extract import _OBJECT, _kind
from .record import _EMPTY_TAGS
from .sinks import Sink, resolve_sink

if TYPE_CHECKING:
    from .session import UsageSession

__all__ = ["track_usage"]

F = TypeVar("F", bound=Callable[..., Any])
SinkSpec = Sink | str | os.PathLike[str]


class Call:
    """One call of a decorated function in progress: what instrumented SDK calls inside it report to."""

    __slots__ = ("recorded", "tracker")

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.recorded = False


current_call: ContextVar[Call | None] = ContextVar("tokenlog_current_call", default=None)
"""The innermost decorated call running in this context, if any."""


class Tracker:
    """What one decorated function (or one instrumented SDK method) records with.

    Its name, its model fallback, its tags and its sinks; it also says once when the function
    returned no usage.
    """

    def __init__(
        self,
        function: str,
        model: str | None,
        tags: Mapping[str, str] | None,
        sinks: tuple[route.GuardedSink, ...] | None,
    ) -> None:
        self.function = function
        self.model = model
        self.tags = types.MappingProxyType({str(k): str(v) for k, v in tags.items()}) if tags else None
        self.sinks = sinks
        self._warned = False

    def observe(self, result: Any, started: float, kwargs: Mapping[str, Any], call: Call | None) -> Any:
        """Record ``result``'s usage; return ``result`` itself, or a recording proxy for a stream.

        ``call`` is the decorated call this result belongs to: a stream or a record made here
        counts for it, so the decorator does not call its own result "without usage".
        """
        if _plain_types.get(type(result)) or _is_plain(type(result)):  # an SDK response, most likely
            try:
                if route.record_plain(result, self.function, started, self.tags or _EMPTY_TAGS, self.sinks):
                    if call is not None:
                        call.recorded = True
                    return result
            except SinkError:
                raise  # strict mode: the user asked for it
            except Exception as exc:  # a bug of ours must never break the user's call
                self.failed(exc, stacklevel=4)
                return result
        fallback = self.model or _model_argument(kwargs)
        stream = streams.observe_stream(result, self, started, fallback)
        if stream is not None:
            if call is not None:
                call.recorded = True
            return stream
        if self._record(result, started, fallback, None) is not None:
            if call is not None:
                call.recorded = True
        elif call is None or not call.recorded:
            self.missing_usage(result, None)
        return result

    def record_chunk(
        self, chunk: object, started: float, model: str | None, sessions: tuple[UsageSession, ...]
    ) -> bool:
        """Record a stream chunk that carries usage; True if a record was made."""
        return self._record(chunk, started, model, sessions) is not None

    def missing_usage(self, result: object, sessions: tuple[UsageSession, ...] | None) -> None:
        """A call ended with no usage to record: count it, and say so once per function."""
        if not config.settings.enabled:
            return
        route.note_missing_usage(sessions)
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
            warnings.warn(
                f"{self.function} returned a {kind.__qualname__} without token usage, so no row was "
                f"written (shown once per function){hint}",
                TokenlogWarning,
                stacklevel=4,
            )

    def _record(
        self, result: object, started: float, model: str | None, sessions: tuple[UsageSession, ...] | None
    ) -> object:
        try:
            latency_ms = (perf_counter() - started) * 1000.0
            return route.record(result, model, self.function, latency_ms, self.tags, self.sinks, sessions)
        except SinkError:
            raise  # strict mode: the user asked for it
        except Exception as exc:  # a bug of ours must never break the user's call
            self.failed(exc, stacklevel=5)
            return None

    def failed(self, exc: Exception, *, stacklevel: int) -> None:
        """Recording a call failed in tokenlog itself: say so (at the user's line); the call goes on."""
        message = f"tokenlog failed to record a call of {self.function}: {exc!r}"
        warnings.warn(message, TokenlogWarning, stacklevel=stacklevel)


def _model_argument(kwargs: Mapping[str, Any]) -> str | None:
    model = kwargs.get("model")
    return model if isinstance(model, str) and model else None


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
    guarded = route.guard_all(resolve_sink(spec) for spec in specs) if (sink is not None or sinks is not None) else None

    def decorate(wrapped: F) -> F:
        tracker = Tracker(name or _qualified_name(wrapped), model, tags, guarded)
        target = getattr(wrapped, "__func__", wrapped)  # a classmethod/staticmethod object
        if inspect.iscoroutinefunction(target):
            return _async_wrapper(tracker)(wrapped)  # type: ignore[no-any-return]
        return _sync_wrapper(tracker)(wrapped)  # type: ignore[no-any-return]

    return decorate if func is None else decorate(func)


_plain_types: dict[type, bool] = {}
"""Per type of result: an object that is not a mapping, sequence or stream (route.record_plain may read it)."""


def _is_plain(kind: type) -> bool:
    plain = _plain_types.get(kind)
    if plain is None:
        plain = _kind(kind) == _OBJECT and not streams.is_stream_type(kind)
        if len(_plain_types) < 10_000:  # types made on the fly must not grow this without bound
            _plain_types[kind] = plain
    return plain


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


def _sync_wrapper(tracker: Tracker) -> Any:
    @wrapt.decorator(proxy=_FunctionWrapper)  # type: ignore[untyped-decorator,unused-ignore]
    def wrapper(wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not config.settings.enabled:
            return wrapped(*args, **kwargs)
        if not _context.patching:  # no instrumented SDK method can be inside this call
            started = perf_counter()
            return tracker.observe(wrapped(*args, **kwargs), started, kwargs, None)
        call = Call(tracker)
        token = current_call.set(call)
        started = perf_counter()
        try:
            result = wrapped(*args, **kwargs)
        finally:
            current_call.reset(token)
        return tracker.observe(result, started, kwargs, call)

    return wrapper


def _async_wrapper(tracker: Tracker) -> Any:
    async def run(wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = Call(tracker)
        token = current_call.set(call)
        started = perf_counter()
        try:
            result = await wrapped(*args, **kwargs)
        finally:
            current_call.reset(token)
        return tracker.observe(result, started, kwargs, call)

    @wrapt.decorator(proxy=_FunctionWrapper)  # type: ignore[untyped-decorator,unused-ignore]
    def wrapper(wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not config.settings.enabled:
            return wrapped(*args, **kwargs)
        return run(wrapped, args, kwargs)

    return wrapper


def _qualified_name(wrapped: Callable[..., Any]) -> str:
    qualname = getattr(wrapped, "__qualname__", None) or getattr(wrapped, "__name__", None) or repr(wrapped)
    module = getattr(wrapped, "__module__", None)
    return f"{module}.{qualname}" if module else str(qualname)
