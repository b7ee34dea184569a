"""Recorded calls: the one wrapper factory, the call context, and what a call records with.

One wrapper factory (:func:`call_wrapper`) serves the decorator (:mod:`tokenlog.track`) and the
instrumented SDK and HTTP methods (:mod:`tokenlog.instrumentation`), sync and async: a
:class:`Tracker` says whether a call is recorded (:meth:`Tracker.enter`) and in whose name; the
:class:`Call` it returns is the call context that SDK and HTTP calls made inside it report to, and
observes what the call returned.
"""

from __future__ import annotations

import inspect
import types
import weakref
from collections.abc import Callable, Coroutine, Iterable, Mapping
from contextvars import ContextVar
from time import perf_counter
from types import CoroutineType
from typing import TYPE_CHECKING, Any

import wrapt

from . import config, route, streams
from .delivery.guard import Destination
from .errors import BudgetExceeded, SinkError, article, warn
from .extract import response_id
from .identity import recorded
from .limits import Limit
from .scopes import NO_SCOPES, OpenScopes, current

__all__ = ["Call", "Tracker", "Wrapper", "budgeted", "call_wrapper", "current_call"]

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

    def enter(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Call | None:
        """The context of a call about to start; ``None`` to call straight through (recording is off).

        Raises :class:`~tokenlog.BudgetExceeded` if a budget in force refuses the call: it is not made.
        """
        return self.start(kwargs) if config.settings.enabled else None

    def start(self, kwargs: Mapping[str, Any]) -> Call:
        """A call starts: its context, once the budgets in force let it (the model from ``model=``, if passed)."""
        call = Call(self)
        limits = route.in_force(current.get())
        if limits:
            call.held = route.admit(limits, self.model or kwargs.get("model"), False)
        return call

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
            name = kind.__qualname__
            warn(
                f"{self.function} returned {article(name)} without token usage, so no row was "
                f"written (shown once per function){_stream_hint(kind) if streamed else ''}"
            )


def _stream_hint(kind: type) -> str:
    """What to do about a stream that ended without usage, for the SDK it came from."""
    sdk = kind.__module__.partition(".")[0]
    if sdk == "mistralai":
        return (
            "; mistralai sends usage on the last chunk of a stream: read the stream to its end (a stream closed "
            "or broken off early has none)"
        )
    if sdk == "openai":
        return "; an OpenAI stream carries usage only when asked: pass stream_options={'include_usage': True}"
    return (
        "; a stream carries usage only on its last chunk, and with OpenAI-compatible APIs only when asked: "
        "stream_options={'include_usage': True}"
    )


class Call:
    """One recorded call in progress: the context SDK and HTTP calls made inside it report to."""

    __slots__ = ("held", "held_until", "inner", "outer", "recorded", "sdk", "started", "tracker")

    def __init__(self, tracker: Tracker, outer: Call | None = None, *, sdk: bool = False) -> None:
        self.tracker = tracker
        self.outer = outer
        """The decorated call this SDK or HTTP call was made in: what it records counts for that call too."""
        self.sdk = sdk
        """An SDK method's call: the HTTP requests the SDK makes for it are not recorded again."""
        self.started = perf_counter()
        self.recorded = False
        self.inner: tuple[str, ...] | None = None
        """The request ids of the responses that calls made inside this one recorded."""
        self.held: tuple[Limit, ...] = ()
        """The budgets that hold a place for this call while it is in flight (released when it returns)."""
        self.held_until: weakref.finalize[Any, Any] | None = None
        """A coroutine's places, released when it has been awaited (or dropped)."""

    def release(self) -> None:
        """The call returned or failed: let go of its places in budgets (a stream's too, once it is returned)."""
        held, self.held = self.held, ()
        route.release(held)

    def observe(self, result: Any, kwargs: Mapping[str, Any]) -> Any:
        """Record ``result``'s usage; return ``result`` itself, or a recording proxy for a stream.

        A stream, or a record made by an SDK or HTTP call inside this one, counts for this call:
        the call is not "without usage" then, and a response it returns that such a call recorded
        (the same object, or the JSON of the same reply: the same request id) is not recorded again.
        A list, tuple or dict of responses has each of them recorded.
        """
        kind = _result_kinds.get(type(result)) or _result_kind(type(result))
        tracker = self.tracker
        if kind is _RESPONSE:
            if _body_unread(result):  # openai's with_streaming_response: the body is read after this returns
                self._recorded(None)
                return _read_later(result, tracker, self.started, tracker.model or kwargs.get("model"), current.get())
            if self.inner is not None and response_id(result) in self.inner:
                return result  # recorded by the SDK or HTTP call made inside, whose JSON this is
            if tracker.record(result, self.started, tracker.model or kwargs.get("model"), None):
                self._recorded(result)
            elif not self._record_each(result, kwargs) and not self.recorded:
                tracker.missing_usage(result, current.get())
            return result
        if kind is _STREAM:
            self._recorded(None)
            fallback = tracker.model or kwargs.get("model")
            return streams.observe_stream(
                result, tracker, self.started, fallback if isinstance(fallback, str) else None
            )
        if kind is _MANY:
            if not self._record_each(result, kwargs) and not self.recorded:
                tracker.missing_usage(result, current.get())
            return result
        awaited = self._awaited(result, kwargs)  # a coroutine from a plain def (openai's async methods)
        if self.held:  # the request leaves when it is awaited: it keeps its places until then, and back
            self.held_until = weakref.finalize(awaited, route.release, self.held)  # (or dropped, never awaited)
            self.held = ()
        return awaited

    def observe_http(self, response: Any, kwargs: Mapping[str, Any]) -> Any:
        """Record the usage in an HTTP response's JSON body, if its body is read and carries usage; return it.

        Most HTTP requests are not model calls: one without usage is neither counted nor warned about.
        """
        if self.tracker.record(response, self.started, None, None):
            request_id = response_id(response)  # parses the body once more: once for both uses below
            if request_id is not None:
                recorded.remember_reply(request_id)
            self._recorded(response, request_id)
        return response

    def _record_each(self, result: object, kwargs: Mapping[str, Any]) -> bool:
        """Record each response in a list, tuple or dict ``result``; True if any was (or was recorded inside)."""
        kind = type(result)
        if kind is dict:
            items: Iterable[object] = result.values()  # type: ignore[attr-defined]
        elif kind is list or kind is tuple:
            items = result  # type: ignore[assignment]
        else:
            return False
        found = False
        tracker = self.tracker
        for item in items:
            if self.inner is not None and response_id(item) in self.inner:
                found = True
            elif tracker.record(item, self.started, tracker.model or kwargs.get("model"), None):
                found = True
                self._recorded(item)
        return found

    def _recorded(self, response: object, request_id: str | None = None) -> None:
        """This call recorded ``response`` (``None``: a stream); ``request_id``, if known already, is its id."""
        self.recorded = True
        outer = self.outer
        if outer is not None:
            outer.recorded = True
            if request_id is None and response is not None:
                request_id = response_id(response)
            if request_id is not None:
                outer.inner = (request_id,) if outer.inner is None else (*outer.inner, request_id)

    async def _awaited(self, coroutine: Coroutine[Any, Any, Any], kwargs: Mapping[str, Any]) -> Any:
        try:
            token = current_call.set(self)
            try:
                result = await coroutine
            finally:
                current_call.reset(token)
            return self.observe(result, kwargs)
        finally:
            if self.held_until is not None:
                self.held_until()  # once: a finalizer runs at most once


current_call: ContextVar[Call | None] = ContextVar("tokenlog_current_call", default=None)
"""The innermost recorded call running in this context, if any: SDK calls inside it record for it."""

_RESPONSE, _STREAM, _COROUTINE, _MANY = "response", "stream", "coroutine", "many"
_result_kinds: dict[type, str] = {}
"""What a type of result is, decided once per type."""


def _result_kind(kind: type) -> str:
    if streams.is_stream_type(kind):
        found = _STREAM
    elif issubclass(kind, CoroutineType):
        found = _COROUTINE
    elif kind is list or kind is tuple:
        found = _MANY  # several responses (or a response with other values): each is recorded
    else:
        found = _RESPONSE
    if len(_result_kinds) < 10_000:  # types made on the fly must not grow this without bound
        _result_kinds[kind] = found
    return found


def _body_unread(result: object) -> bool:
    """An openai ``APIResponse`` whose HTTP body nobody has read yet (``with_streaming_response``)."""
    if not type(result).__module__.startswith("openai."):
        return False
    http = getattr(result, "http_response", None)
    return http is not None and type(http).__module__.startswith("httpx") and "_content" not in vars(http)


if TYPE_CHECKING:
    _Proxy = wrapt.BaseObjectProxy[Any]
else:  # wrapt's proxy classes take a type argument only from 2.2 on; tokenlog supports wrapt 2.0 and 2.1 too
    _Proxy = wrapt.BaseObjectProxy


class _ReadLater(_Proxy):
    """An openai response whose body is read after the call returned: recorded once, when the body is read
    through ``parse()``, ``json()``, ``read()`` or ``text()`` (a stream read line by line is not: its usage
    chunk is never parsed by tokenlog)."""

    def __init__(self, wrapped: Any, tracker: Tracker, started: float, model: object, scopes: OpenScopes) -> None:
        super().__init__(wrapped)
        self._self_call = (tracker, started, model, scopes)
        self._self_done = False

    def _self_record(self) -> None:
        if self._self_done:
            return
        self._self_done = True
        tracker, started, model, scopes = self._self_call
        if not tracker.record(self.__wrapped__.http_response, started, model, scopes):
            tracker.missing_usage(self.__wrapped__, scopes)


def _reads_body(name: str) -> Callable[..., Any]:
    """The proxy's ``name`` (``parse``, ``json``, ``read``, ``text``): the response's own, then the record."""

    def read(self: _ReadLater, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.__wrapped__, name)(*args, **kwargs)
        self._self_record()
        return result

    read.__name__ = read.__qualname__ = name
    return read


def _reads_body_async(name: str) -> Callable[..., Any]:
    """:func:`_reads_body` for an async response (``AsyncAPIResponse``), whose readers are coroutines."""

    async def read(self: _ReadLater, *args: Any, **kwargs: Any) -> Any:
        result = await getattr(self.__wrapped__, name)(*args, **kwargs)
        self._self_record()
        return result

    read.__name__ = read.__qualname__ = name
    return read


class _ReadLaterSync(_ReadLater):
    parse, json, read, text = (_reads_body(name) for name in ("parse", "json", "read", "text"))


class _ReadLaterAsync(_ReadLater):
    parse, json, read, text = (_reads_body_async(name) for name in ("parse", "json", "read", "text"))


def _read_later(result: Any, tracker: Tracker, started: float, model: object, scopes: OpenScopes) -> Any:
    kind = _ReadLaterAsync if inspect.iscoroutinefunction(type(result).parse) else _ReadLaterSync
    return kind(result, tracker, started, model, scopes)


Observe = Callable[[Call, Any, Mapping[str, Any]], Any]
"""What a call does with its result: :meth:`Call.observe` (a function or SDK method) or :meth:`Call.observe_http`."""


def call_wrapper(
    enter: Callable[[tuple[Any, ...], dict[str, Any]], Call | None], asynchronous: bool, observe: Observe = Call.observe
) -> Wrapper:
    """The wrapt wrapper of a recorded callable: ``enter(args, kwargs)`` decides per call (and may refuse it:
    :class:`~tokenlog.BudgetExceeded`), ``observe`` records the result.

    One driver for plain callables and one for ``async def`` ones; they differ only by the ``await``.
    """
    if asynchronous:

        async def run(call: Call, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                token = current_call.set(call)
                try:
                    result = await wrapped(*args, **kwargs)
                finally:
                    current_call.reset(token)
                return observe(call, result, kwargs)
            finally:
                if call.held:
                    call.release()

        def run_async(
            wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            try:
                call = enter(args, kwargs)
            except BudgetExceeded as exc:
                return _refused(exc)  # raised where the call is awaited, as the call's own errors are
            return wrapped(*args, **kwargs) if call is None else run(call, wrapped, args, kwargs)

        return run_async

    def run_sync(wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = enter(args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            token = current_call.set(call)
            try:
                result = wrapped(*args, **kwargs)
            finally:
                current_call.reset(token)
            return observe(call, result, kwargs)
        finally:
            if call.held:
                call.release()

    return run_sync


async def _refused(exc: BudgetExceeded) -> Any:
    raise exc


def budgeted(wrapper: Wrapper, budget: Limit, asynchronous: bool) -> Wrapper:
    """``wrapper`` with ``budget`` enforced on each call and on every call made inside it (a decorated
    function's ``budget=``): the call runs in the current scopes with the budget added. The scopes with the
    budget are made once per scopes the function is called in (the last pair is kept: a loop of calls in one
    session makes them once)."""
    last: list[tuple[OpenScopes, OpenScopes]] = [(NO_SCOPES, NO_SCOPES.with_budget(budget))]

    def scoped() -> OpenScopes:
        base = current.get()
        pair = last[0]  # one read: another thread may replace it
        if pair[0] is not base:
            pair = last[0] = (base, base.with_budget(budget))
        return pair[1]

    if asynchronous:

        async def run_async(
            wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            token = current.set(scoped())
            try:
                return await wrapper(wrapped, instance, args, kwargs)
            finally:
                current.reset(token)

        return run_async

    def run_sync(wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        token = current.set(scoped())
        try:
            return wrapper(wrapped, instance, args, kwargs)
        finally:
            current.reset(token)

    return run_sync
