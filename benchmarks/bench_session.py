"""Memory of a usage_session that sees many calls: totals only (keep_records=False) against keeping records.

Run as ``python -m benchmarks.bench_session --calls N --keep-records {0,1}`` in a fresh process (peak RSS is
per process); prints ``{"calls": N, "peak_mb": ..., "us_per_call": ...}``. benchmarks.run compares N and 10 N.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import tokenlog


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--keep-records", type=int, choices=(0, 1), required=True)
    args = parser.parse_args()
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}

    @tokenlog.track_usage(sinks=[])  # rows go nowhere: the session's own memory is what is measured
    def call(i: int) -> dict[str, object]:
        return {"id": f"cmpl-{i}", "model": "mistral-small-latest", "usage": dict(usage)}

    started = time.perf_counter()
    with tokenlog.usage_session("service", keep_records=bool(args.keep_records)) as session:
        for i in range(args.calls):
            call(i)
    elapsed = time.perf_counter() - started
    assert session.calls == args.calls
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"calls": args.calls, "peak_mb": peak_kb / 1024, "us_per_call": elapsed / args.calls * 1e6}))


if __name__ == "__main__":
    main()
