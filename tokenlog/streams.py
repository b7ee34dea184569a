"""Transparent proxies for streams: chunks pass through as they come; usage is recorded exactly once.

A stream is a generator, an async generator, or an iterator object such as mistralai's
``EventStream``/``EventStreamAsync`` or openai's ``Stream``/``AsyncStream``. The proxy keeps
everything the stream offers (iteration, ``with``/``async with``, ``close()``, attributes such as
``.response``) and buffers nothing.

When is the record made? On the chunk that carries usage *and* ends the reply (a choice with a
``finish_reason``, an OpenAI usage chunk with ``choices=[]``, a mistralai ``ResponseDoneEvent``):
that is the moment usage arrives with every API we know. A chunk with usage that does not end the
reply (servers that report running totals on every chunk) is remembered, and the last one is
recorded when the stream ends, is closed, or is garbage-collected. A stream that ends without any
usage writes no row, counts in the open sessions as a call without usage, and warns once per
function. An exception raised while iterating passes through unchanged.
"""

from __future__ import annotations

import io
import types
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

import wrapt

from ._fork import fork_safe_lock
from .extract import stream_chunk_usage
from .scopes import OpenScopes, current

__all__ = ["StreamObserver", "StreamProxy", "is_stream_type", "observe_stream"]


class StreamObserver(Protocol):
    """What a stream proxy reports to (the decorator's or the instrumentation's tracker)."""

    def record(self, chunk: object, started: float, model: object, scopes: OpenScopes | None) -> bool: ...

    def missing_usage(self, stream: object, scopes: OpenScopes) -> None: ...


class _StreamState:
    """The per-stream bookkeeping, kept apart from the proxy so a finalizer can hold it."""

    __slots__ = ("candidate", "done", "fallback", "lock", "model", "observer", "scopes", "started", "stream_type")

    def __init__(self, observer: StreamObserver, started: float, stream_type: type, fallback: str | None) -> None:
        self.observer = observer
        self.fallback = fallback
        self.started = started
        self.stream_type = stream_type
        # The call was made in these sessions, whenever the chunks are read.
        self.scopes = current.get()
        self.model: str | None = None
        self.candidate: object = None
        self.done = False
        self.lock = fork_safe_lock()

    def see(self, chunk: object) -> None:
        if self.done:
            return
        found = stream_chunk_usage(chunk)
        if found is None:
            return
        model, has_usage, final = found
        if model is not None and self.model is None:
            self.model = model
        if not has_usage:
            return
        if not final:
            self.candidate = chunk
            return
        if not self._claim():
            return
        self.candidate = None
        self.observer.record(chunk, self.started, self.model or self.fallback, self.scopes)

    def _claim(self) -> bool:
        """Mark the stream done; True for the one caller that did it (chunks and finalizers may race)."""
        with self.lock:
            if self.done:
                return False
            self.done = True
            return True

    def finish(self) -> None:
        """The stream ended, was closed or abandoned: record what was held back, or count the miss."""
        if not self._claim():
            return
        candidate, self.candidate = self.candidate, None
        if candidate is not None and self.observer.record(
            candidate, self.started, self.model or self.fallback, self.scopes
        ):
            return
        self.observer.missing_usage(self.stream_type, self.scopes)

    def fail(self) -> None:
        """Iteration raised: the call failed, so nothing more is recorded for it."""
        with self.lock:
            self.done = True
        self.candidate = None


if TYPE_CHECKING:
    _Proxy = wrapt.BaseObjectProxy[Any]
else:  # wrapt's proxy classes take a type argument only from 2.2 on; tokenlog supports wrapt 2.0 and 2.1 too
    _Proxy = wrapt.BaseObjectProxy


class StreamProxy(_Proxy):
    """Base of every stream proxy; tokenlog never wraps a proxy twice."""

    def __init__(self, wrapped: Any, observer: StreamObserver, started: float, fallback: str | None) -> None:
        super().__init__(wrapped)
        state = _StreamState(observer, started, type(wrapped), fallback)
        self._self_state = state
        self._self_iterator: Any = None  # the wrapped stream's iterator, taken on first use
        self._self_finalizer = weakref.finalize(self, state.finish)
        self._self_finalizer.atexit = False

    def _self_end(self) -> None:
        self._self_finalizer.detach()
        self._self_state.finish()

    def _self_stopped(self, exc: BaseException) -> None:
        """Iteration raised ``exc``: the stream's end, or its failure (then nothing more is recorded)."""
        self._self_finalizer.detach()
        if isinstance(exc, (StopIteration, StopAsyncIteration)):
            self._self_state.finish()
        else:
            self._self_state.fail()

    def __reduce_ex__(self, protocol: Any) -> Any:  # pragma: no cover - streams cannot be pickled anyway
        return self.__wrapped__.__reduce_ex__(protocol)


class _SyncStream(StreamProxy):
    """A sync iterator (mistralai ``EventStream``, openai ``Stream``, any iterator object)."""

    def __iter__(self) -> _SyncStream:
        return self

    def __next__(self) -> Any:
        iterator = self._self_iterator
        if iterator is None:
            iterator = self._self_iterator = iter(self.__wrapped__)
        return self._self_step(next, iterator)

    def _self_step(self, advance: Callable[..., Any], *args: Any) -> Any:
        try:
            chunk = advance(*args)
        except BaseException as exc:
            self._self_stopped(exc)
            raise
        self._self_state.see(chunk)
        return chunk

    def __enter__(self) -> Any:
        entered = self.__wrapped__.__enter__()
        return self if entered is self.__wrapped__ else entered

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc_info)
        finally:
            self._self_end()

    @property
    def close(self) -> Callable[[], Any]:
        """The stream's own ``close`` (there is none if the stream has none), which also ends the record."""
        close = self.__wrapped__.close

        def closing() -> Any:
            try:
                return close()
            finally:
                self._self_end()

        return closing


class _AsyncStream(StreamProxy):
    """An async iterator (mistralai ``EventStreamAsync``, openai ``AsyncStream``)."""

    def __aiter__(self) -> _AsyncStream:
        return self

    async def __anext__(self) -> Any:
        iterator = self._self_iterator
        if iterator is None:
            iterator = self._self_iterator = self.__wrapped__.__aiter__()
        return await self._self_step(iterator.__anext__())

    async def _self_step(self, advance: Awaitable[Any]) -> Any:
        try:
            chunk = await advance
        except BaseException as exc:
            self._self_stopped(exc)
            raise
        self._self_state.see(chunk)
        return chunk

    async def __aenter__(self) -> Any:
        entered = await self.__wrapped__.__aenter__()
        return self if entered is self.__wrapped__ else entered

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc_info)
        finally:
            self._self_end()

    @property
    def close(self) -> Callable[[], Any]:
        """The stream's own ``close`` (sync or async), which also ends the record."""
        close = self.__wrapped__.close
        return lambda: self._self_closing(close())

    @property
    def aclose(self) -> Callable[[], Any]:
        """The stream's own ``aclose``, which also ends the record."""
        aclose = self.__wrapped__.aclose
        return lambda: self._self_closing(aclose())

    def _self_closing(self, result: Any) -> Any:
        if not isinstance(result, Awaitable):
            self._self_end()
            return result

        async def closing() -> Any:
            try:
                return await result
            finally:
                self._self_end()

        return closing()


class _Generator(_SyncStream):
    """A generator: also ``send`` and ``throw``."""

    def send(self, value: Any) -> Any:
        return self._self_step(self.__wrapped__.send, value)

    def throw(self, *args: Any) -> Any:
        return self._self_step(self.__wrapped__.throw, *args)


class _AsyncGenerator(_AsyncStream):
    """An async generator: also ``asend`` and ``athrow``."""

    async def asend(self, value: Any) -> Any:
        return await self._self_step(self.__wrapped__.asend(value))

    async def athrow(self, *args: Any) -> Any:
        return await self._self_step(self.__wrapped__.athrow(*args))


_NOT_STREAMS = (str, bytes, bytearray, dict, list, tuple, io.IOBase)
_proxies: dict[type, type[StreamProxy] | None] = {}
"""Which proxy a type of result gets (``None``: not a stream), decided once per type."""


def _proxy_for(kind: type) -> type[StreamProxy] | None:
    if issubclass(kind, StreamProxy) or issubclass(kind, _NOT_STREAMS):
        return None
    if issubclass(kind, types.GeneratorType):
        return _Generator
    if issubclass(kind, types.AsyncGeneratorType):
        return _AsyncGenerator
    if hasattr(kind, "__next__"):
        return _SyncStream
    if hasattr(kind, "__anext__"):
        return _AsyncStream
    return None


def is_stream_type(kind: type) -> bool:
    """True if values of this type are streams (or stream proxies): :func:`observe_stream` wraps them."""
    return issubclass(kind, StreamProxy) or _proxy_for(kind) is not None


def observe_stream(result: object, observer: StreamObserver, started: float, fallback: str | None) -> object | None:
    """A recording proxy for ``result`` if it is a stream (or the proxy it already is), else ``None``."""
    kind = type(result)
    try:
        proxy = _proxies[kind]
    except KeyError:
        proxy = _proxy_for(kind)
        if len(_proxies) < 10_000:
            _proxies[kind] = proxy
    if proxy is None:
        return result if isinstance(result, StreamProxy) else None
    return proxy(result, observer, started, fallback)
