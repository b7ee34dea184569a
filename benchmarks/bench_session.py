"""Memory of a usage_session that sees many calls: totals only (keep_records=False) against keeping records.

Run as ``python -m benchmarks.bench_session --calls N --keep-records {0,1}`` in a fresh process (peak RSS is
per process); prints ``{"calls": N, "peak_mb": ..., "us_per_call": ...}``. benchmarks.run compares N and 10 N.

With ``--after-instrumenting-session 0|1`` it times decorated calls outside any session instead, in a process
where a ``usage_session()`` has (1) or has not (0) patched the SDK methods first: before the one route path, every
decorated call after such a session took a slower path for the rest of the process.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import tokenlog
import tokenlog.testing


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, required=True)
    parser.add_argument("--keep-records", type=int, choices=(0, 1), default=0)
    parser.add_argument("--after-instrumenting-session", type=int, choices=(0, 1))
    args = parser.parse_args()
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}

    @tokenlog.track_usage(sinks=[])  # rows go nowhere: the session's own memory is what is measured
    def call(i: int) -> dict[str, object]:
        return {"id": f"cmpl-{i}", "model": "mistral-small-latest", "usage": dict(usage)}

    if args.after_instrumenting_session is not None:
        import mistralai.client.chat  # noqa: F401 - an SDK module for the session to patch (imported in both runs)

        if args.after_instrumenting_session:
            with tokenlog.usage_session():  # instruments, and leaves the post-import hooks in place
                pass
        responses = [{"id": f"cmpl-{i}", "model": "m", "usage": dict(usage)} for i in range(args.calls)]
        tracked = tokenlog.track_usage(sinks=[])(lambda i: responses[i])
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for i in range(args.calls):
                tracked(i)
            best = min(best, time.perf_counter() - started)
            tokenlog.testing.reset()  # the same responses are recorded again in the next round
            if args.after_instrumenting_session:
                with tokenlog.usage_session():
                    pass
        print(json.dumps({"calls": args.calls, "us_per_call": best / args.calls * 1e6}))
        return

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
