"""What @track_usage adds to a call, sink excluded (a no-op sink), against bare and wrapt baselines.

Every call returns a fresh mistralai ``ChatCompletionResponse``, built by the SDK from JSON right
before the call (outside the clock), so each call is recorded for real (no "already recorded"
shortcut) and its response is as hot in the CPU cache as right after a real API call. Each call
is timed on its own (``perf_counter_ns`` around it); the timer's own ~0.07 us is in every
candidate, the bare call included, so it cancels out of what a wrapper adds.

(The harness before this one built 20,000 responses ahead and touched one field of each: most of
each object was cold, and every field a candidate read cost a cache miss that a real program does
not pay. It charged tokenlog 0.6 us a call more than this one.)
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import wrapt

import tokenlog
from benchmarks.common import Result, interleaved
from tokenlog.extract import read_usage
from tokenlog.instrumentation import _SdkTracker
from tokenlog.record import UsageRecord
from tokenlog.track import _FunctionWrapper, call_wrapper


class NoopSink:
    """Receives records and does nothing: isolates tokenlog's own cost."""

    def write(self, record: UsageRecord) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


PAYLOAD: dict[str, Any] = {
    "id": "cmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "mistral-small-latest",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
}
"""The JSON of one chat completion, as the API sends it."""


def _builder() -> Callable[[], Any]:
    """Builds a mistralai 3.x/2.x (else 1.x) chat response from JSON, as the SDK does for each reply."""
    try:
        from mistralai.client.models import ChatCompletionResponse
    except ImportError:  # mistralai 1.x
        from mistralai.models import ChatCompletionResponse  # type: ignore[no-redef,attr-defined,unused-ignore]
    return lambda: ChatCompletionResponse.model_validate(PAYLOAD)


Candidate = Callable[[int], float]
"""Runs one repeat of a workload and returns microseconds per operation."""


def fresh_responses(count: int) -> tuple[Callable[[int], Any], Callable[[Callable[[int], object]], Candidate]]:
    """``(call, timed)``: ``call(i)`` returns the response built for this call; ``timed(op)`` is a candidate
    that, ``count`` times, builds a fresh response (untimed) and times one ``op(i)``."""
    held: list[Any] = [None]
    build = _builder()

    def call(i: int) -> Any:
        return held[0]

    def timed(operation: Callable[[int], object]) -> Candidate:
        def go(_: int) -> float:
            total = 0
            for i in range(count):
                held[0] = build()
                started = time.perf_counter_ns()
                operation(i)
                total += time.perf_counter_ns() - started
            return total / count / 1000.0

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
    proxy_passthrough = wrapt.decorator(_passthrough, proxy=_FunctionWrapper)(call)
    tracked = tokenlog.track_usage(sinks=[NoopSink()])(call)
    patched = wrapt.FunctionWrapper(call, call_wrapper(_SdkTracker("bench").enter, asynchronous=False))

    in_session = tokenlog.track_usage(sinks=[NoopSink()])(call)

    def inside_a_session(candidate: Candidate) -> Candidate:
        def go(repeat: int) -> float:
            with tokenlog.usage_session("bench", instrument=False):  # instrument=True would patch SDKs for all
                return candidate(repeat)

        return go

    candidates = {
        "bare call": timed(call),
        "functools.wraps closure": timed(closure),
        "wrapt.decorator pass-through": timed(wrapt_passthrough),
        "same, with tokenlog's FunctionWrapper": timed(proxy_passthrough),
        "instrumented SDK method, no session": timed(patched),
        "read usage off a mistralai response": timed(lambda i: read_usage(call(i))),
        "@track_usage, no-op sink": timed(tracked),
        "@track_usage in a usage_session, no-op sink": inside_a_session(timed(in_session)),
    }
    return interleaved(candidates, repeats)
