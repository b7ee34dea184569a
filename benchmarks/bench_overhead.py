"""What @track_usage adds to a call, sink excluded (a no-op sink), against bare and wrapt baselines.

Every call returns a fresh mistralai ``ChatCompletionResponse`` (built before the clock starts), so
each call is recorded for real (no "already recorded" shortcut). Every candidate's function first
touches its response (``response.usage.total_tokens``), as the SDK has just done when it parsed it:
otherwise 20,000 objects built ahead of time are cold in the CPU cache and every candidate that reads
them pays for that, not for its own work.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import wrapt

import tokenlog
from benchmarks.common import Result, interleaved, per_call_us
from tokenlog.extract import read_usage
from tokenlog.instrumentation import _sync_wrapper
from tokenlog.record import UsageRecord
from tokenlog.track import Tracker


class NoopSink:
    """Receives records and does nothing: isolates tokenlog's own cost."""

    def write(self, record: UsageRecord) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def responses(count: int) -> list[Any]:
    """Fresh mistralai 3.x/2.x (else 1.x) chat responses, as the SDK returns them."""
    try:
        from mistralai.client.models import ChatCompletionResponse
    except ImportError:  # mistralai 1.x
        from mistralai.models import ChatCompletionResponse  # type: ignore[no-redef,attr-defined,unused-ignore]
    payload = {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "mistral-small-latest",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }
    return [ChatCompletionResponse.model_validate(payload) for _ in range(count)]


Candidate = Callable[[int], float]
"""Runs one repeat of a workload and returns microseconds per operation."""


def fresh_responses(count: int) -> tuple[Callable[[int], Any], Callable[[Callable[[int], object]], Candidate]]:
    """``(call, timed)``: ``call(i)`` returns the i-th of ``count`` fresh responses, touched first (hot in cache,
    as right after the SDK parsed it); ``timed(op)`` is a candidate that builds them anew, then times ``op``."""
    held: list[Any] = []

    def call(i: int) -> Any:
        response = held[i]
        response.usage.total_tokens  # noqa: B018 - hot in cache, as right after the SDK parsed it
        return response

    def timed(operation: Callable[[int], object]) -> Candidate:
        def go(_: int) -> float:
            held[:] = responses(count)
            return per_call_us(operation, count)

        return go

    return call, timed


def _passthrough(wrapped: Callable[..., Any], instance: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return wrapped(*args, **kwargs)


def run(calls: int, repeats: int) -> dict[str, Result]:
    """Microseconds per call of each candidate."""
    call, timed = fresh_responses(calls)

    @functools.wraps(call)
    def closure(i: int) -> Any:
        return call(i)

    wrapt_passthrough = wrapt.decorator(_passthrough)(call)
    tracked = tokenlog.track_usage(sinks=[NoopSink()])(call)
    patched = wrapt.FunctionWrapper(call, _sync_wrapper(Tracker("bench", None, None, None)))

    candidates = {
        "bare call": timed(call),
        "functools.wraps closure": timed(closure),
        "wrapt.decorator pass-through": timed(wrapt_passthrough),
        "instrumented SDK method, no session": timed(patched),
        "read usage off a mistralai response": timed(lambda i: read_usage(call(i))),
        "@track_usage, no-op sink": timed(tracked),
    }
    return interleaved(candidates, repeats)
