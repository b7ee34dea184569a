"""One path, one speed: the decorator's whole path to each kind of sink, for SDK objects and for JSON dicts.

Every candidate gets a response built just before its call (an SDK ``ChatCompletionResponse`` from JSON, or
the ``dict`` that ``requests``/``httpx`` users get from ``response.json()``) and times that one call, as in
bench_overhead. The baselines, measured in the same run: the decorator into a CsvSink (for the sink rows),
and the hand-written helper with the usage read by hand (for the "x faster" targets).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

import tokenlog
from benchmarks.bench_csv import log_usage_to_csv
from benchmarks.bench_overhead import PAYLOAD, NoopSink, _builder
from benchmarks.common import Result, interleaved
from tokenlog.record import RecordValues


class NoopFieldsSink(NoopSink):
    """A user's sink that offers the write_fields capability and does nothing with the fields."""

    def write_fields(self, fields: RecordValues) -> bool:
        return True


def _dict_response() -> dict[str, Any]:
    """What ``response.json()`` gives for one call: a new dict (and usage dict) each time."""
    return {**PAYLOAD, "usage": dict(PAYLOAD["usage"])}


def _timed(build: Callable[[], Any], operation: Callable[[Any], object], count: int) -> Callable[[int], float]:
    def go(_: int) -> float:
        total = 0
        for _i in range(count):
            response = build()
            started = time.perf_counter_ns()
            operation(response)
            total += time.perf_counter_ns() - started
        return total / count / 1000.0

    return go


def _helper_for_sdk(path: str) -> Callable[[Any], object]:
    def call(response: Any) -> None:
        usage = response.usage
        log_usage_to_csv(response.model, usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, path)

    return call


def _helper_for_dict(path: str) -> Callable[[Any], object]:
    def call(data: dict[str, Any]) -> None:
        usage = data["usage"]
        log_usage_to_csv(data["model"], usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"], path)

    return call


def run(calls: int, repeats: int) -> dict[str, Result]:
    """Microseconds per call of each candidate, each writing to its own file."""
    directory = tempfile.mkdtemp(prefix="tokenlog-bench-paths-")
    files = iter(os.path.join(directory, f"{index}.csv") for index in range(100))
    sdk = _builder()

    def tracked(*sinks: object) -> Callable[[Any], object]:
        return tokenlog.track_usage(sinks=list(sinks))(lambda response: response)  # type: ignore[arg-type]

    candidates = {
        "SDK object -> @track_usage -> CsvSink": _timed(sdk, tracked(tokenlog.CsvSink(next(files))), calls),
        "SDK object -> @track_usage -> user sink with write_fields (no-op)": _timed(
            sdk, tracked(NoopFieldsSink()), calls
        ),
        "SDK object -> @track_usage -> user sink with write(record) (no-op)": _timed(sdk, tracked(NoopSink()), calls),
        "dict -> @track_usage -> CsvSink": _timed(_dict_response, tracked(tokenlog.CsvSink(next(files))), calls),
        "SDK object -> read by hand -> helper": _timed(sdk, _helper_for_sdk(next(files)), calls),
        "dict -> read by hand -> helper": _timed(_dict_response, _helper_for_dict(next(files)), calls),
    }
    return interleaved(candidates, repeats)
