"""@track_usage: record the usage of whatever a function returns."""

from __future__ import annotations

import inspect
import os
import types
import warnings
from collections.abc import Callable, Iterable, Mapping
from time import perf_counter
from typing import Any, TypeVar, overload

import wrapt

from . import config, route, streams
from .errors import SinkError, TokenlogWarning
from .sinks import Sink, resolve_sink

__all__ = ["track_usage"]

F = TypeVar("F", bound=Callable[..., Any])
SinkSpec = Sink | str | os.PathLike[str]


class _Tracker:
    """What one decorated function records with: its name, model fallback, tags and sinks."""

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

    def observe(self, result: Any, started: float, kwargs: Mapping[str, Any]) -> Any:
        """Record ``result``'s usage; return ``result`` itself (or a recording proxy for generators)."""
        observed = streams.observe_iterable(result, self, started)
        if observed is not None:
            return observed
        if self._record(result, started, kwargs.get("model")) is None:
            self.missing_usage(result)
        return result

    def observe_item(self, item: object, started: float) -> bool:
        """Record an item a generator yielded, if it carries usage; True if it did."""
        return self._record(item, started, None) is not None

    def missing_usage(self, result: object) -> None:
        """A call ended with no usage to record: count it, and say so once per function."""
        if not config.settings.enabled:
            return
        route.note_missing_usage()
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{self.function} returned a {type(result).__qualname__} without token usage, so no row was "
                "written (shown once per function)",
                TokenlogWarning,
                stacklevel=4,
            )

    def _record(self, result: object, started: float, model_argument: object) -> object:
        model = self.model or (model_argument if isinstance(model_argument, str) else None)
        try:
            return route.record_response(
                result,
                model=model,
                function=self.function,
                latency_ms=(perf_counter() - started) * 1000.0,
                tags=self.tags,
                sinks=self.sinks,
            )
        except SinkError:
            raise  # strict mode: the user asked for it
        except Exception as exc:  # a bug of ours must never break the user's call
            message = f"tokenlog failed to record a call of {self.function}: {exc!r}"
            warnings.warn(message, TokenlogWarning, stacklevel=4)
            return None


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
        tracker = _Tracker(name or _qualified_name(wrapped), model, tags, guarded)
        target = getattr(wrapped, "__func__", wrapped)  # a classmethod/staticmethod object
        if inspect.iscoroutinefunction(target):
            return _async_wrapper(tracker)(wrapped)  # type: ignore[no-any-return]
        return _sync_wrapper(tracker)(wrapped)  # type: ignore[no-any-return]

    return decorate if func is None else decorate(func)


def _sync_wrapper(tracker: _Tracker) -> Any:
    @wrapt.decorator  # type: ignore[untyped-decorator,unused-ignore]
    def wrapper(wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not config.settings.enabled:
            return wrapped(*args, **kwargs)
        started = perf_counter()
        result = wrapped(*args, **kwargs)
        return tracker.observe(result, started, kwargs)

    return wrapper


def _async_wrapper(tracker: _Tracker) -> Any:
    async def call(wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        started = perf_counter()
        result = await wrapped(*args, **kwargs)
        return tracker.observe(result, started, kwargs)

    @wrapt.decorator  # type: ignore[untyped-decorator,unused-ignore]
    def wrapper(wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not config.settings.enabled:
            return wrapped(*args, **kwargs)
        return call(wrapped, args, kwargs)

    return wrapper


def _qualified_name(wrapped: Callable[..., Any]) -> str:
    qualname = getattr(wrapped, "__qualname__", None) or getattr(wrapped, "__name__", None) or repr(wrapped)
    module = getattr(wrapped, "__module__", None)
    return f"{module}.{qualname}" if module else str(qualname)
