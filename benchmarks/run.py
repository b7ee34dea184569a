"""Run every benchmark side by side with its baselines and print (and save) the results table.

    python -m benchmarks.run            # full run (several minutes), writes docs/benchmarks.md
    python -m benchmarks.run --quick    # small sizes, a few seconds, writes nothing (CI runs this)

Every figure is a median over repeats that interleave the candidates, so that machine noise hits
them alike; targets are ratios against baselines measured in the same run. Nothing here asserts:
the table says which targets are met.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks import (
    bench_budget,
    bench_csv,
    bench_import,
    bench_overhead,
    bench_paths,
    bench_processes,
    bench_report,
)
from benchmarks.common import Result, machine, table

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _rows(results: dict[str, Result], baseline: str) -> list[list[object]]:
    base = results[baseline].median
    return [[name, r.median, r.min, r.max, f"{r.median / base:.2f}x" if base else "-"] for name, r in results.items()]


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def process_section(processes: int, rows: int, repeats: int) -> list[str]:
    """The lines of the multi-process section: each candidate in both start modes against the minimal writer."""
    results = bench_processes.run(processes, rows, repeats)
    base = {(r.mode, r.round_number): r for r in results if r.name == "minimal"}

    def spread(ratios: list[float]) -> str:
        return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"

    rows_out: list[list[object]] = []
    verdicts: list[str] = []
    for mode in bench_processes.MODES:
        for name in bench_processes.KINDS:
            runs = [r for r in results if r.mode == mode and r.name == name]
            ratios = {
                field: [getattr(r, field) / getattr(base[mode, r.round_number], field) for r in runs]
                for field in ("rows_per_s", "p50_us", "p99_us")
            }
            extra_headers = sum(r.headers - 1 for r in runs)
            rows_out.append(
                [mode, name]
                + [
                    x
                    for field in ("rows_per_s", "p50_us", "p99_us")
                    for x in (statistics.median(getattr(r, field) for r in runs), spread(ratios[field]))
                ]
                + [extra_headers, sum(r.bad_lines for r in runs), sum(r.missing_rows for r in runs)]
            )
            if name in ("tokenlog", "locked append"):
                rate, p99 = statistics.median(ratios["rows_per_s"]), statistics.median(ratios["p99_us"])
                verdicts.append(
                    f"- {mode}, {name}: {rate:.2f}x the minimal writer's rows/s (target >= 1x: {_verdict(rate >= 1)}), "
                    f"p99 {p99:.2f}x its p99 (target <= 1x: {_verdict(p99 <= 1)})."
                )

    def rate_of(name: str) -> float:
        return statistics.median(r.rows_per_s for r in results if r.name == name)

    def p50_of(name: str) -> float:
        return statistics.median(r.p50_us for r in results if r.name == name)

    def p99_of(name: str) -> float:
        return statistics.median(r.p99_us for r in results if r.name == name)

    defects = {
        name: sum(r.headers - 1 + r.bad_lines + r.missing_rows for r in results if r.name == name)
        for name in bench_processes.KINDS
    }
    return [
        f"## {processes} processes x {rows:,} rows into one file",
        "",
        "The baseline is the minimal correct writer: `O_APPEND` fd opened once; per row the line formatted from",
        "the response (its usage, `datetime.now(timezone.utc).isoformat()`), a blocking `flock(LOCK_EX)`, one",
        "`os.write` (the header by whoever finds the file empty under the lock), unlock. `tokenlog` is the",
        "decorator + CsvSink; `locked append` is CsvSink's lock and append alone (`LockedAppendFile`) writing the",
        "line formatted the same way: no decorator, no reading of the response by name; only tokenlog's way of",
        "waiting for the lock and its checks of the file differ. Start modes:",
        "`synchronized`, every spawned worker ready, then all start at once; `staggered`, workers spawned",
        f"{bench_processes.STAGGER * 1000:.0f} ms apart, each writing as soon as it is ready while the later ones "
        f"still import. {repeats} rounds,",
        "candidates interleaved, every run on a fresh file. rows/s counts the time anyone is writing; p50 and p99",
        "are over every call of every worker. Each figure is the median over the rounds; ratios are against the",
        "minimal writer of the same round and mode: median [min-max]. Defects, summed over the rounds: header",
        "lines beyond the first, lines that do not parse, rows missing.",
        "",
        table(
            [
                "start",
                "candidate",
                "rows/s",
                "x minimal",
                "p50 us",
                "x minimal",
                "p99 us",
                "x minimal",
                "extra headers",
                "bad lines",
                "missing rows",
            ],
            rows_out,
        ),
        "",
        *verdicts,
        f"- Per call: tokenlog's median call takes {p50_of('tokenlog'):.1f} us, the minimal writer's "
        f"{p50_of('minimal'):.1f} us, and tokenlog's lock and append alone {p50_of('locked append'):.1f} us: the "
        "difference is the decorator and reading the response by name. With more writers than CPUs, the CPU time of "
        "a call bounds rows/s, so tokenlog's rows/s follow its cost per call, not the way it waits for the lock.",
        f"- tokenlog {rate_of('tokenlog'):,.0f} rows/s vs the hand-written helper's {rate_of('helper'):,.0f}, all runs "
        f"({rate_of('tokenlog') / rate_of('helper'):.2f}x; target >= 1x: "
        f"{_verdict(rate_of('tokenlog') >= rate_of('helper'))}).",
        f"- Defects: tokenlog {defects['tokenlog']}, locked append {defects['locked append']}, minimal writer "
        f"{defects['minimal']}, helper {defects['helper']}"
        + (" (duplicate headers: its header race)." if defects["helper"] else " (its header race did not strike)."),
        "",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes; print only (for CI)")
    parser.add_argument("--write", action="store_true", help="also write docs/benchmarks.md (default without --quick)")
    args = parser.parse_args(argv)
    quick = args.quick
    calls, repeats = (2_000, 3) if quick else (10_000, 9)
    processes, rows, process_repeats = (4, 500, 1) if quick else (8, 10_000, 3)

    out: list[str] = ["# Benchmarks", "", f"Measured on {machine()}.", ""]
    out += [
        "Regenerate with `python -m benchmarks.run` (a few minutes; `--quick` for a smoke run). Times are",
        "microseconds per call or row: median, min and max over interleaved repeats; ratios are against the",
        "baseline named in each section, measured in the same run. The machine is shared and noisy: read the",
        "ratios, not the absolute numbers.",
        "",
    ]

    overhead = bench_overhead.run(calls, repeats)
    wrapt_us = overhead["wrapt.decorator pass-through"].median
    bare_us = overhead["bare call"].median
    tracked_extra = overhead["@track_usage, no-op sink"].median - bare_us
    wrapt_extra = wrapt_us - bare_us
    proxy_extra = overhead["same, with tokenlog's FunctionWrapper"].median - bare_us
    patched_extra = overhead["instrumented SDK method, no session"].median - bare_us
    session_extra = overhead["@track_usage in a usage_session, no-op sink"].median - bare_us
    out += [
        "## What `@track_usage` adds to a call (sink excluded)",
        "",
        "Each call returns a fresh mistralai `ChatCompletionResponse`, built by the SDK from JSON just before the",
        f"call (outside the clock); each call is timed on its own. {calls:,} calls a repeat, {repeats} repeats.",
        "Ratios against a bare `wrapt.decorator` pass-through.",
        "",
        table(["candidate", "median us", "min", "max", "ratio"], _rows(overhead, "wrapt.decorator pass-through")),
        "",
        "The bare call is the timer's own cost (~0.07 us); what a wrapper adds is its time minus the bare call's.",
        "",
        f"- `@track_usage` adds {tracked_extra:.2f} us a call (target <= 2 us: {_verdict(tracked_extra <= 2)}): "
        f"{tracked_extra / wrapt_us:.1f}x a whole wrapt pass-through call ({wrapt_us:.2f} us; target within 5x: "
        f"{_verdict(tracked_extra <= 5 * wrapt_us)}), {tracked_extra / wrapt_extra:.1f}x what that wrapper itself "
        f"adds ({wrapt_extra:.2f} us).",
        "- tokenlog's decorator is a wrapt `FunctionWrapper` subclass (`wrapt.decorator(proxy=...)`) that, for a "
        "plain function, calls the wrapper without wrapt's per-call `__self__` lookup (an AttributeError raised and "
        f"cleared each call): a pass-through with it adds {proxy_extra:.2f} us. The targets are against the stock "
        "wrapt pass-through, as the issue sets them.",
        f"- Inside a `usage_session` (counted there, named after it, its tags merged) it adds {session_extra:.2f} us.",
        f"- An instrumented SDK method outside any session adds {patched_extra:.2f} us "
        f"({patched_extra - wrapt_extra:.2f} us more than the bare wrapt wrapper).",
        "",
    ]

    csv_results = bench_csv.run(calls // 4, repeats)
    limit = csv_results["flock + os.write of a ready line (limit)"].median
    sink = csv_results["CsvSink.write(record)"].median
    whole = csv_results["whole path: @track_usage + CsvSink"].median
    helper_whole = csv_results["whole path: read usage by hand + helper"].median
    helper = csv_results["hand-written helper (log_usage_to_csv)"].median
    jsonl = csv_results["JsonlSink.write(record)"].median
    sqlite = csv_results["SqliteSink.write(record)"].median
    csv_threads = csv_results["CsvSink.write(record), 4 threads"].median
    sqlite_threads = csv_results["SqliteSink.write(record), 4 threads"].median
    out += [
        "## One process writing CSV rows",
        "",
        "Ratios against the physical limit: one `os.write` of a ready line to an `O_APPEND` fd opened once,",
        "under `fcntl.flock`. The hand-written helper is the usual `log_usage_to_csv` (threading.Lock, open",
        "in append mode, isfile/getsize for the header, `csv.DictWriter`, close). The two whole-path rows get a",
        "response built just before each call and time each call, as above; the others time a loop of rows.",
        "",
        table(
            ["candidate", "median us", "min", "max", "ratio"],
            _rows(csv_results, "flock + os.write of a ready line (limit)"),
        ),
        "",
        f"- CsvSink.write is {sink / limit:.2f}x the limit (target <= 2x: {_verdict(sink <= 2 * limit)}; aim 1.5x: "
        f"{'reached' if sink <= 1.5 * limit else 'not reached'}).",
        f"- The whole path (decorator + extraction + CsvSink) is {helper_whole / whole:.2f}x faster than reading usage "
        f"by hand and calling the helper (target >= 3x: {_verdict(helper_whole >= 3 * whole)}).",
        f"- JsonlSink.write is {jsonl / sink:.2f}x CsvSink.write (target <= 1.5x: {_verdict(jsonl <= 1.5 * sink)}).",
        f"- SqliteSink.write is {sqlite / sink:.2f}x CsvSink.write (target <= 3x: {_verdict(sqlite <= 3 * sink)}) "
        f"and {sqlite / helper:.2f}x the hand-written helper. Each row is committed when write() returns, so one "
        "thread pays one SQLite commit a row (the WAL frames of the table and its two indexes, and a checkpoint "
        "every ~333 rows). From 4 threads, rows share transactions (group commit): "
        f"{sqlite_threads / csv_threads:.2f}x CsvSink.write from 4 threads, {sqlite_threads / sqlite:.2f}x its own "
        "single-thread time.",
        "",
    ]

    paths = bench_paths.run(calls // 2, repeats)
    to_csv = paths["SDK object -> @track_usage -> CsvSink"].median
    to_fields = paths["SDK object -> @track_usage -> user sink with write_fields (no-op)"].median
    to_records = paths["SDK object -> @track_usage -> user sink with write(record) (no-op)"].median
    dict_csv = paths["dict -> @track_usage -> CsvSink"].median
    sdk_helper = paths["SDK object -> read by hand -> helper"].median
    dict_helper = paths["dict -> read by hand -> helper"].median
    out += [
        "## One path, one speed: every sink, SDK objects and dicts",
        "",
        "The decorator's whole path (reading the response, the record or its fields, the sink), one call timed at a",
        "time, each with a response built just before it: a mistralai `ChatCompletionResponse`, or the `dict` that",
        "`requests`/`httpx` give (`response.json()`). Ratios against the path to a CsvSink.",
        "",
        table(["candidate", "median us", "min", "max", "ratio"], _rows(paths, "SDK object -> @track_usage -> CsvSink")),
        "",
        f"- To a user's sink that offers `write_fields`: {to_fields / to_csv:.2f}x the path to CsvSink "
        f"(target within 1.10x: {_verdict(to_fields <= 1.10 * to_csv)}).",
        f"- To a user's plain `write(record)` sink that does nothing: {to_records / to_csv:.2f}x the path to CsvSink "
        f"(target: clearly cheaper, it does no I/O: {_verdict(to_records < 0.9 * to_csv)}).",
        f"- SDK objects: {sdk_helper / to_csv:.2f}x faster than reading usage by hand and calling the helper; dicts: "
        f"{dict_helper / dict_csv:.2f}x (target >= 3x for both: "
        f"{_verdict(sdk_helper >= 3 * to_csv and dict_helper >= 3 * dict_csv)}).",
        "",
    ]

    budget = bench_budget.run(calls // 2, repeats)
    plain = budget["@track_usage, no budget"].median

    def added(name: str) -> float:
        return budget[name].median - plain

    admit_local = budget["Budget.admit alone, calls"].median
    admit_csv = budget["Budget.admit alone, shared CSV"].median
    admit_sqlite = budget["Budget.admit alone, shared SQLite"].median
    out += [
        "## What a budget adds to a decorated call",
        "",
        "`@track_usage` with a no-op sink and a budget that never runs out (every call checked and charged), one",
        "call timed at a time on a fresh mistralai response; ratios against the same decorator without a budget.",
        "Shared budgets follow a log of 1,000 rows that nothing is appended to while the clock runs. The",
        "`Budget.admit` rows time the check alone, in a loop.",
        "",
        table(["candidate", "median us", "min", "max", "ratio"], _rows(budget, "@track_usage, no budget")),
        "",
        f"- The check before a call (`Budget.admit`): in-process {admit_local:.2f} us (target < 0.3 us: "
        f"{_verdict(admit_local < 0.3)}); shared, nothing appended, CSV {admit_csv:.2f} us and SQLite "
        f"{admit_sqlite:.2f} us (target < 3 us: {_verdict(max(admit_csv, admit_sqlite) < 3)}): one `stat` of the "
        "log (of the WAL for SQLite) and a lock.",
        f"- Everything a budget adds to a decorated call (the check, the budget put in scope for the calls made "
        f"inside, the charge after it): {added('@track_usage, in-process budget (max_calls)'):.2f} us with "
        f"max_calls, {added('@track_usage, in-process budget (max_cost_usd)'):.2f} us with max_cost_usd (pricing "
        f"the call), {added('@track_usage, shared CSV budget'):.2f} us shared through a CSV log, "
        f"{added('@track_usage, shared SQLite budget'):.2f} us through an SQLite log.",
        "",
    ]

    session_calls = (10_000, 100_000) if quick else (100_000, 1_000_000)
    memory = {
        (keep, count): json.loads(
            subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_session", "--calls", str(count), "--keep-records", str(keep)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for keep in (0, 1)
        for count in session_calls
    }
    few, many = session_calls
    flat = memory[0, many]["peak_mb"] / memory[0, few]["peak_mb"]
    out += [
        "## A session around a service: memory over many calls",
        "",
        "One process per row: a decorated function returning a new JSON dict each call, inside one",
        "`usage_session`, rows going nowhere (`sinks=[]`), so the session's own memory is what grows or not.",
        "",
        table(
            ["session", "calls", "peak RSS MB", "us per call"],
            [
                [f"keep_records={bool(keep)}", f"{count:,}", m["peak_mb"], m["us_per_call"]]
                for (keep, count), m in memory.items()
            ],
        ),
        "",
        f"- `usage_session(keep_records=False)`: peak memory over {many:,} calls is {flat:.2f}x that over {few:,} "
        f"(target flat, <= 1.10x: {_verdict(flat <= 1.10)}); keeping every record grows "
        f"{memory[1, many]['peak_mb'] / memory[1, few]['peak_mb']:.1f}x.",
        "",
    ]

    out += process_section(processes, rows, process_repeats)

    imports = bench_import.run(3 if quick else 10)
    cumulative = imports["import tokenlog (-X importtime, cumulative)"].median / 1000
    first_use = (
        imports["python -c 'import tokenlog' + first decorator and session"].median - imports["python -c pass"].median
    ) / 1000
    out += [
        "## Import time",
        "",
        table(
            ["measure", "median ms", "min", "max"],
            [[name, r.median / 1000, r.min / 1000, r.max / 1000] for name, r in imports.items()],
        ),
        "",
        f"- `import tokenlog` adds {cumulative:.1f} ms (target <= 50 ms: {_verdict(cumulative <= 50)}); public names "
        f"load on first use, and the first decorator plus session bring the total to {first_use:.0f} ms over a "
        "bare interpreter (most of it wrapt, which imports asyncio).",
        "",
    ]

    sizes = (10_000, 100_000) if quick else (100_000, 1_000_000)
    # In a process of its own: a child's peak RSS starts from its parent's, and this one holds a lot by now.
    command = [sys.executable, "-m", "benchmarks.bench_report", "--json", "--repeat", "1" if quick else "3"]
    measured = json.loads(
        subprocess.run([*command, *(["--quick"] if quick else [])], capture_output=True, text=True, check=True).stdout
    )
    reports = {(name, rows): bench_report.Measure(seconds, peak) for name, rows, seconds, peak in measured}
    baseline_name = next(iter(bench_report.COMMANDS))
    small, large = sizes
    report_large = reports["tokenlog report", large]
    growth = report_large.peak_mb / reports["tokenlog report", small].peak_mb
    out += [
        "## Reading logs: `tokenlog report`, `validate`, `merge`",
        "",
        f"Generated logs of {small:,} and {large:,} rows; best of the runs; baseline: a plain `csv.reader` loop",
        "summing the counts of the same file, in a subprocess like the commands.",
        "",
        table(
            ["command", "rows", "seconds", "x baseline", "peak MB"],
            [
                [name, f"{rows:,}", m.seconds, f"{m.seconds / reports[baseline_name, rows].seconds:.2f}x", m.peak_mb]
                for (name, rows), m in reports.items()
            ],
        ),
        "",
        f"- `tokenlog report` over {large:,} rows: {report_large.seconds:.2f} s, peak memory {growth:.2f}x that of "
        f"{small:,} rows (target <= 3 s and flat, for 1,000,000 rows: "
        f"{_verdict(report_large.seconds <= 3 and growth <= 1.25) if not quick else 'not measured in --quick'}).",
    ]
    engine = "duckdb (same totals by model)"
    if (engine, large) in reports:
        ratio = report_large.seconds / reports[engine, large].seconds
        out.append(
            f"- Against duckdb on the same {large:,} rows: `tokenlog report` takes {ratio:.1f}x its time "
            "(target <= 2x: "
            f"{_verdict(ratio <= 2)}), in {report_large.peak_mb:.0f} MB against its "
            f"{reports[engine, large].peak_mb:.0f} MB (target < 64 MB: {_verdict(report_large.peak_mb < 64)})."
        )
    else:
        out.append("- duckdb is not installed here: `pip install duckdb polars pandas` to compare with the engines.")
    out.append("")

    report = "\n".join(out)
    print(report)
    if args.write or not quick:
        DOC.write_text(report, encoding="utf-8")
        print(f"\nwrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
