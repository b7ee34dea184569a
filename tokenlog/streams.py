"""Transparent proxies for generators: items pass through untouched; usage is recorded as it passes."""

from __future__ import annotations

import types
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Protocol

import wrapt

__all__ = ["observe_iterable"]


class _Observer(Protocol):
    def observe_item(self, item: object, started: float) -> bool: ...

    def missing_usage(self, result: object) -> None: ...


class _ObservedGenerator(wrapt.BaseObjectProxy[Generator[Any, Any, Any]]):
    """A generator that records each item carrying usage; everything else is the generator's own."""

    def __init__(self, wrapped: Generator[Any, Any, Any], observer: _Observer, started: float) -> None:
        super().__init__(wrapped)
        self._self_observer = observer
        self._self_started = started
        self._self_recorded = False

    def __iter__(self) -> _ObservedGenerator:
        return self

    def __next__(self) -> Any:
        return self._self_step(self.__wrapped__.__next__)

    def send(self, value: Any) -> Any:
        return self._self_step(lambda: self.__wrapped__.send(value))

    def throw(self, *args: Any) -> Any:
        return self._self_step(lambda: self.__wrapped__.throw(*args))

    def _self_step(self, advance: Callable[[], Any]) -> Any:
        try:
            item = advance()
        except StopIteration:
            if not self._self_recorded:
                self._self_observer.missing_usage(self.__wrapped__)
                self._self_recorded = True  # warn once, even if iterated again
            raise
        if self._self_observer.observe_item(item, self._self_started):
            self._self_recorded = True
        return item


class _ObservedAsyncGenerator(wrapt.BaseObjectProxy[AsyncGenerator[Any, Any]]):
    """The async twin of :class:`_ObservedGenerator`."""

    def __init__(self, wrapped: AsyncGenerator[Any, Any], observer: _Observer, started: float) -> None:
        super().__init__(wrapped)
        self._self_observer = observer
        self._self_started = started
        self._self_recorded = False

    def __aiter__(self) -> _ObservedAsyncGenerator:
        return self

    async def __anext__(self) -> Any:
        return await self._self_step(self.__wrapped__.__anext__())

    async def asend(self, value: Any) -> Any:
        return await self._self_step(self.__wrapped__.asend(value))

    async def athrow(self, *args: Any) -> Any:
        return await self._self_step(self.__wrapped__.athrow(*args))

    async def _self_step(self, advance: Any) -> Any:
        try:
            item = await advance
        except StopAsyncIteration:
            if not self._self_recorded:
                self._self_observer.missing_usage(self.__wrapped__)
                self._self_recorded = True
            raise
        if self._self_observer.observe_item(item, self._self_started):
            self._self_recorded = True
        return item


def observe_iterable(result: object, observer: _Observer, started: float) -> object | None:
    """A proxy that records usage from ``result``'s items, or ``None`` if it is not a generator."""
    if isinstance(result, types.GeneratorType):
        return _ObservedGenerator(result, observer, started)
    if isinstance(result, types.AsyncGeneratorType):
        return _ObservedAsyncGenerator(result, observer, started)
    return None
