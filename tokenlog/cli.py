"""The ``tokenlog`` command (also ``python -m tokenlog``): report, validate, repair, merge, demo, serve.

Exit status: 0 on success, 1 when ``validate`` (or ``merge``) finds invalid rows or ``repair`` moved
broken lines aside, 2 for a usage error (a bad option, a missing or unreadable file, a bad price file).
Errors are one line on standard error, never a traceback. ``report``, ``validate``, ``repair`` and ``merge``
need only the standard library; the mistralai SDK and the local server are imported only when ``demo`` or
``serve`` runs.
"""

from __future__ import annotations

import argparse
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ._version import __version__
from .errors import article, counted
from .logs.read import LogFileError, log_format
from .pricing import PricingError

__all__ = ["CommandError", "HelpFormatter", "main"]

DEFAULT_LOG = "mistral_usage_log.csv"
DEMO_LOG = "tokenlog-demo.csv"
"""Where ``tokenlog demo`` writes unless told ``--log FILE``: apart from the user's own log."""


class CommandError(Exception):
    """A command cannot do its job; ``status`` is the exit status (2: the user's input is wrong)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def _default_log() -> str:
    """``$TOKENLOG_FILE`` (``~`` expanded), else ``./mistral_usage_log.csv``; exit 2 if its suffix names no format."""
    try:
        from .config import default_file  # reading the environment checks TOKENLOG_FILE

        return default_file()
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenlog", description="Record and read LLM token usage logs (mistral_usage_log.csv)."
    )
    parser.add_argument("--version", action="version", version=f"tokenlog {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_report(commands)
    _add_validate(commands)
    _add_repair(commands)
    _add_merge(commands)
    _add_diff(commands)
    _add_demo(commands)
    _add_serve(commands)
    _add_import_batch(commands)
    return parser


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wraps descriptions to the terminal as argparse does, and prints the examples epilog as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:\n"):
            return super()._fill_text(text, width, indent)  # raw: one example a line
        return argparse.HelpFormatter._fill_text(self, text, width, indent)


_EXAMPLES = {
    "report": ("tokenlog report --by day,model --since 2026-06-01", "tokenlog report --format html -o report.html"),
    "validate": ("tokenlog validate mistral_usage_log.csv", "tokenlog validate --max-errors 5 laptop.csv server.csv"),
    "repair": ("tokenlog repair mistral_usage_log.csv", "tokenlog repair --lock-timeout 30 usage.csv"),
    "merge": ("tokenlog merge laptop.csv server.csv -o team.csv", "tokenlog merge *.csv --skip-invalid -o all.csv"),
    "diff": (
        "tokenlog diff main_usage.csv pr_usage.csv --fail-above 10",
        "tokenlog diff usage.csv --base-until 2026-06-07 --head-since 2026-06-08 --by function",
    ),
    "demo": ("tokenlog demo --processes 0", "tokenlog demo --log /tmp/demo.csv"),
    "serve": ("tokenlog serve --port 8000", "tokenlog serve --host 0.0.0.0 --port 8080"),
    "import-batch": (
        "tokenlog import-batch batch_results.jsonl",
        "tokenlog import-batch results.jsonl --log team_usage_log.csv",
    ),
}
"""Two command lines for each command, shown at the end of its ``--help`` (a test parses each one)."""


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], run: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """The subcommand named after ``run`` (``_report``: ``report``), which runs it.

    Its one-line help is the first line of ``run``'s docstring (without the full stop), its description the rest
    (wrapped), and its epilog its two examples.
    """
    name = run.__name__.lstrip("_").replace("_", "-")
    summary, _, details = inspect.cleandoc(run.__doc__ or "").partition("\n\n")
    parser = commands.add_parser(
        name,
        help=summary.rstrip("."),
        description=" ".join(details.split()),
        epilog="examples:\n" + "\n".join(f"  {example}" for example in _EXAMPLES[name]),
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(run=run, parser=parser)
    return parser


def _add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .logs.report import DIMENSIONS, FORMATS

    report = _command(commands, _report)
    report.add_argument(
        "files", nargs="*", metavar="FILE", help=f"usage logs to read (default: $TOKENLOG_FILE or ./{DEFAULT_LOG})"
    )
    report.add_argument(
        "--by",
        action="append",
        metavar="GROUP",
        help=f"group by {', '.join(DIMENSIONS)}; combine them (--by model,day or --by model --by day). Default: model",
    )
    report.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="tag:NAME=VALUE",
        help="only calls with this tag value (tag:team=search); repeat to require several",
    )
    report.add_argument("--since", metavar="TIME", help="only calls at or after TIME (2026-06-01, 2026-06-01T14:00)")
    report.add_argument("--until", metavar="TIME", help="only calls at or before TIME (a date includes its whole day)")
    report.add_argument(
        "--model", action="append", metavar="NAME", help="only these models; glob patterns work (mistral-large*)"
    )
    report.add_argument(
        "--format",
        choices=(*FORMATS, "html"),
        default="table",
        help="output format (default: table); html: one self-contained page with charts (with -o FILE)",
    )
    report.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of standard output")
    report.add_argument(
        "--prices",
        action="append",
        metavar="FILE",
        default=[],
        help="a TOML file of prices that overrides or extends the built-in table (also $TOKENLOG_PRICES)",
    )
    report.add_argument(
        "--reprice",
        action="store_true",
        help="price every call from the table, also those whose CostUSD the log recorded when they were made",
    )


def _usage_error(args: argparse.Namespace, message: str) -> NoReturn:
    """Print the command's usage and ``message``, and exit with status 2 (argparse's way)."""
    parser: argparse.ArgumentParser = args.parser
    parser.error(message)


def _split(values: Sequence[str] | None) -> list[str]:
    """Values of a repeatable option that also takes comma-separated lists."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def _report(args: argparse.Namespace) -> int:
    """calls, tokens and estimated cost in usage logs, grouped by model, day, hour, session or function.

    Total the calls, prompt, completion and total tokens and the estimated cost in usage logs (CSV, JSONL or
    SQLite), grouped and filtered. Reads each file once, row by row.
    """
    from .logs.report import build_report, dimension_problem, parse_where, render
    from .pricing import load_prices

    by = _split(args.by) or ["model"]
    for name in by:
        problem = dimension_problem(name)
        if problem:
            _usage_error(args, f"--by {name}: {problem}")
    where = []
    for text in args.where:
        try:
            where.append(parse_where(text))
        except ValueError as exc:
            _usage_error(args, f"--where {exc}")
    since, until = _time_option(args, "since"), _time_option(args, "until")
    files = args.files or [_default_log()]
    if not args.files and not os.path.exists(files[0]):
        raise CommandError(
            f"{files[0]}: no such file. Run your program to write it, or name a log: tokenlog report FILE"
        )
    output = args.output
    if output is not None:
        _check_output(output)
    models, prices = _split(args.model), load_prices(args.prices)
    if args.format == "html":
        from .logs.html import html_report

        page = html_report(
            files, since=since, until=until, models=models, prices=prices, reprice=args.reprice, where=where
        )
        text, report = page.text, page.report
    else:
        report = build_report(
            files,
            group_by=by,
            since=since,
            until=until,
            models=models,
            prices=prices,
            reprice=args.reprice,
            where=where,
        )
        text = render(report, args.format, color=args.format == "table" and output is None and _color(sys.stdout))
    if output is None:
        sys.stdout.write(text)
    else:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        print(f"Wrote {output}: {counted(report.total.calls, 'call')}", file=sys.stderr)
    if report.skipped:
        print(
            f"tokenlog report: skipped {counted(report.skipped, 'row')} that "
            f"{'is not a usage row' if report.skipped == 1 else 'are not usage rows'}; check the file with "
            "`tokenlog validate`. First:",
            *report.examples,
            sep="\n  ",
            file=sys.stderr,
        )
    return 0


def _add_diff(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from .logs.diff import DIFF_FORMATS

    diff = _command(commands, _diff)
    diff.add_argument("base", metavar="BASE", help="the log to compare with (CSV, JSONL or SQLite)")
    diff.add_argument("head", metavar="HEAD", nargs="?", help="the log to compare (default: BASE, with other windows)")
    diff.add_argument(
        "--by", default="model", metavar="GROUP", help="model (default), function, session, day or tag:NAME"
    )
    for side in ("base", "head"):
        diff.add_argument(f"--{side}-since", metavar="TIME", help=f"only {side} calls at or after TIME")
        diff.add_argument(f"--{side}-until", metavar="TIME", help=f"only {side} calls at or before TIME")
    diff.add_argument(
        "--fail-above", type=float, metavar="PCT", help="exit 1 if total tokens or cost grew by more than PCT percent"
    )
    diff.add_argument("--format", choices=DIFF_FORMATS, default="table", help="output format (default: table)")
    diff.add_argument("--prices", action="append", metavar="FILE", default=[], help="a TOML file of prices")


def _diff(args: argparse.Namespace) -> int:
    """compare two usage logs, or two time windows of one: tokens and cost by model, and a gate for CI.

    Total each side by model (or --by function, session, day, tag:NAME) and print both with the change; a group
    found on one side only counts as 0 on the other. With --fail-above PCT the command exits 1 when total tokens
    or the total estimated cost grew by more than PCT percent: "this change makes the eval run 30% more expensive".
    """
    from .logs.diff import diff_logs, render_diff
    from .logs.report import dimension_problem
    from .pricing import load_prices

    problem = dimension_problem(args.by)
    if problem or args.by == "hour":
        _usage_error(args, f"--by {args.by}: {problem or 'expected model, function, session, day or tag:NAME'}")
    head = args.head or args.base
    _check_readable([args.base, head])
    windows = [(_time_option(args, f"{side}_since"), _time_option(args, f"{side}_until")) for side in ("base", "head")]
    if args.head is None and windows[0] == windows[1]:
        _usage_error(args, "one log compares two time windows: give --base-until/--head-since (or a HEAD log)")
    found = diff_logs(
        [args.base], [head], by=args.by, base_window=windows[0], head_window=windows[1], prices=load_prices(args.prices)
    )
    sys.stdout.write(render_diff(found, args.format, args.fail_above))
    return 1 if args.fail_above is not None and found.grew(args.fail_above) else 0


def _check_output(output: str) -> None:
    """Refuse, before any work, a file to write that is a directory or whose directory does not exist."""
    if os.path.isdir(output):
        raise CommandError(f"{output}: is a directory, expected the file to write")
    if not os.path.isdir(os.path.dirname(os.path.abspath(output))):
        raise CommandError(f"{output}: its directory does not exist")


def _time_option(args: argparse.Namespace, name: str) -> str | None:
    """``--since`` or ``--until`` as a UTC timestamp string; a value that is not a time is a usage error."""
    from .logs.report import parse_time

    value = getattr(args, name)
    try:
        return None if value is None else parse_time(value, end=name.endswith("until"))
    except ValueError as exc:
        _usage_error(args, f"--{name.replace('_', '-')}: {exc}")


def _color(stream: object) -> bool:
    """Whether to style a table: only on a terminal, never with NO_COLOR set or TERM=dumb."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _add_validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    validate = _command(commands, _validate)
    validate.add_argument("files", nargs="+", metavar="FILE", help="the logs to check (CSV, JSONL or SQLite)")
    validate.add_argument(
        "--max-errors", type=int, default=0, metavar="N", help="print at most N problems a file (default: all)"
    )


def _validate(args: argparse.Namespace) -> int:
    """check usage logs against the mandatory CSV format before you submit them.

    Check that each FILE is in the mandatory format: UTF-8 without a byte order mark, the header
    TimestampUTC,Model,PromptTokens,CompletionTokens,TotalTokens first and once, ISO 8601 UTC timestamps, non-
    negative integer counts with TotalTokens = PromptTokens + CompletionTokens, no blank or partial lines.
    Prints every problem as FILE:LINE: message, then a verdict. Exit status 1 if any file is invalid. A JSONL or
    SQLite log gets the same checks of each row.
    """
    from .logs.validate import check_for

    if args.max_errors < 0:
        _usage_error(args, "--max-errors must be >= 0")
    formats = _check_readable(args.files)
    invalid, rows, errors, warnings = [], 0, 0, 0
    for path, fmt in zip(args.files, formats, strict=True):
        check = check_for(path, fmt)
        shown = 0
        for problem in check.problems():
            shown += 1
            if not args.max_errors or shown <= args.max_errors:
                print(problem)
        if args.max_errors and shown > args.max_errors:
            print(f"{path}: {counted(shown - args.max_errors, 'more problem')} not shown")
        rows, errors, warnings = rows + check.rows, errors + check.errors, warnings + check.warnings
        if check.errors:
            invalid.append(path)
    noted = f", {counted(warnings, 'warning')}" if warnings else ""
    if invalid:
        print(
            f"FAILED: {counted(errors, 'error')} in {', '.join(invalid)} "
            f"({len(invalid)} of {counted(len(args.files), 'file')}, "
            f"{counted(rows, 'row')}{noted}); a strict reader would reject them"
        )
        return 1
    files = f"{args.files[0]} is" if len(args.files) == 1 else f"all {len(args.files)} files are"
    if all(fmt == "csv" for fmt in formats):
        print(f"OK: {files} in the mandatory format ({counted(rows, 'row')}{noted})")
    else:
        print(
            f"OK: {files} {'a valid usage log' if len(args.files) == 1 else 'valid usage logs'} "
            f"({counted(rows, 'row')}{noted}); the mandatory format is CSV: "
            "`tokenlog merge FILE... -o OUT.csv` writes one"
        )
    return 0


def _add_repair(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    repair = _command(commands, _repair)
    repair.add_argument("files", nargs="+", metavar="FILE", help="the CSV logs to repair")
    repair.add_argument(
        "--lock-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for writers to let go of the file's lock (default: 10)",
    )
    repair.add_argument(
        "--normalize",
        action="store_true",
        help="also rewrite timestamps in another ISO 8601 form (Z, +02:00) in UTC, as 2026-06-01T10:00:00.000000+00:00",
    )


def _repair(args: argparse.Namespace) -> int:
    """move the broken lines of CSV logs (cut short by a killed writer, ...) to a side file.

    Move every line of FILE that `tokenlog validate` reports an error for (a line cut short by a killed writer,
    a wrong number of fields, bad counts, a NUL byte, a repeated header, a blank line) to <name>.broken.csv
    beside it, verbatim, each after a line that says where it was and why. The header and the valid rows stay,
    in order, byte for byte. Safe while programs write to FILE: it holds the same lock as they do, and replaces
    FILE in one step. Exit status 0 if nothing was broken (FILE is untouched), 1 if lines were moved, 2 if a
    FILE cannot be repaired.
    """
    from .logs.repair import RepairError, repair_log

    if not args.lock_timeout >= 0:
        _usage_error(args, "--lock-timeout must be >= 0")
    formats = _check_readable(args.files)
    status = 0
    for path, fmt in zip(args.files, formats, strict=True):
        if fmt != "csv":
            _check_whole_rows(path, fmt)
            continue
        try:
            result = repair_log(path, lock_timeout=args.lock_timeout, normalize=args.normalize)
        except RepairError as exc:
            raise CommandError(str(exc)) from None
        for moved in result.moved:
            print(f"{path}:{moved.first}: {moved.why}")
        if result.moved:
            status = 1
            print(
                f"MOVED: {counted(len(result.moved), 'broken line')} of {path} to {result.side} (lines "
                f"{', '.join(map(str, result.moved))}); {path} keeps its header and {counted(result.rows, 'row')}"
            )
        elif not result.normalized:
            print(f"OK: {path} has no broken lines ({counted(result.rows, 'row')}); nothing changed")
        for note in result.timestamp_notes():
            print(note)
        for problem in result.header_problems:
            print(f"note: the header is left as it is: {problem}")
    return status


_FORMAT_NAMES = {"csv": "CSV", "jsonl": "JSONL", "sqlite": "SQLite"}


def _check_whole_rows(path: str, fmt: str) -> None:
    """``repair`` of a JSONL or SQLite log: nothing is moved; its rows are checked, and a broken one is reported."""
    from .logs.validate import RecordCheck

    check = RecordCheck(path)
    problems = list(check.problems())
    if problems:
        print(*problems, sep="\n")
        stem = os.path.splitext(path)[0]
        raise CommandError(
            f"{path}: {counted(check.errors, 'problem')} in {article(_FORMAT_NAMES.get(fmt, fmt))} log, left as they "
            "are: repair moves the broken "
            f"lines of CSV logs only; `tokenlog merge {path} --skip-invalid -o {stem}.csv` writes its valid rows "
            "to a new CSV log"
        )
    print(f"OK: {path} has no broken lines ({counted(check.rows, 'row')}); nothing changed")


def _add_merge(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    merge = _command(commands, _merge)
    merge.add_argument("files", nargs="+", metavar="FILE", help="the logs to merge")
    merge.add_argument("-o", "--output", required=True, metavar="OUT", help="the CSV file to write")
    merge.add_argument("--force", action="store_true", help="replace OUT if it exists")
    merge.add_argument(
        "--skip-invalid", action="store_true", help="leave out rows that are not valid (default: write nothing)"
    )


def _merge(args: argparse.Namespace) -> int:
    """combine logs from several machines or runs into one valid CSV log.

    Combine usage logs (CSV, JSONL or SQLite) into one CSV log in the mandatory format: sorted by time, one
    header, exact duplicate rows removed, timestamps in UTC. OUT is replaced only with --force, and only once
    the whole result is written.
    """
    from .logs.merge import merge_logs

    _check_readable(args.files)
    output = args.output
    _check_output(output)
    if any(os.path.exists(output) and os.path.samefile(output, path) for path in args.files):
        raise CommandError(f"{output} is also an input: write the result to a new file, then move it")
    if os.path.exists(output) and not args.force:
        raise CommandError(f"{output} exists: use --force to replace it")
    result = merge_logs(args.files, output, skip_invalid=args.skip_invalid)
    if not result.written:
        print(*result.problems, sep="\n", file=sys.stderr)
        raise CommandError(
            f"{counted(result.invalid_rows, 'invalid row')}, nothing written. Fix them (`tokenlog validate` shows "
            "them all), or leave them out with --skip-invalid",
            status=1,
        )
    for problem in result.problems:
        print(f"skipped {problem}", file=sys.stderr)
    skipped = f", {counted(result.invalid_rows, 'invalid row')} skipped" if result.invalid_rows else ""
    print(
        f"Merged {counted(result.rows_read, 'row')} from {counted(len(args.files), 'file')} into {output}: "
        f"{counted(result.rows_written, 'row')}, {counted(result.duplicates, 'exact duplicate')} removed{skipped}. "
        f"Columns: {','.join(result.columns)}"
    )
    return 0


def _check_readable(paths: Sequence[str]) -> list[str]:
    """Refuse, before any work, a path that is missing, not a file, or not a usage log; return their formats."""
    for path in paths:
        if not os.path.exists(path):
            raise CommandError(f"{path}: no such file")
        if os.path.isdir(path):
            raise CommandError(f"{path}: is a directory, expected a usage log file")
        if not os.access(path, os.R_OK):
            raise CommandError(f"{path}: cannot be read (permission denied)")
    return [log_format(path) for path in paths]


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = _command(commands, _demo)
    demo.add_argument(
        "--log",
        "-o",
        "--output",
        dest="log",
        default=DEMO_LOG,
        metavar="FILE",
        help=f"the CSV file to append to (default: ./{DEMO_LOG}; never $TOKENLOG_FILE or ./{DEFAULT_LOG})",
    )
    demo.add_argument(
        "--processes", type=int, metavar="N", help="worker processes sharing the log (default: 3; with --live, 0)"
    )
    demo.add_argument(
        "--live", action="store_true", help="call api.mistral.ai with $MISTRAL_API_KEY (a few cheap, real calls)"
    )


def _demo(args: argparse.Namespace) -> int:
    """make real mistralai SDK calls against a local server, write them to a log of its own, report it (offline).

    Start a Mistral-compatible server on 127.0.0.1, call it with the mistralai SDK through @track_usage and
    usage_session() (sync, async, FIM, embeddings, and worker processes sharing the log), append the rows to
    ./tokenlog-demo.csv (or --log FILE; never to your own log), and print its report. No API key, no network. With
    --live, make the same calls to the real Mistral API with $MISTRAL_API_KEY instead.
    """
    from .demo import run_demo, run_live_demo
    from .logs.report import build_report, render

    processes = args.processes if args.processes is not None else 0 if args.live else 3
    if processes < 0:
        _usage_error(args, "--processes must be >= 0")
    api_key = os.environ.get("MISTRAL_API_KEY", "").strip()
    if args.live and not api_key:
        raise CommandError(
            "--live makes real calls to api.mistral.ai and needs MISTRAL_API_KEY; set it, or run `tokenlog demo` "
            "without --live for the offline demo"
        )
    if args.live:
        try:
            session = run_live_demo(args.log, api_key, processes=processes)
        except Exception as exc:  # the network, the key, the account: the SDK says which
            raise CommandError(f"a live call failed: {type(exc).__name__}: {exc}", status=1) from None
    else:
        session = run_demo(args.log, processes=processes)
    cost = "unknown" if session.cost is None else f"${session.cost:.6f}"
    report = build_report([args.log])
    print(
        f"tokenlog demo: {counted(session.calls, 'call')} in this process "
        f"({counted(session.total_tokens, 'token')}, estimated {cost}) "
        f"and {counted(processes, 'worker process', 'worker processes')}, all appended to {args.log}, which now holds "
        f"{counted(report.total.calls, 'row')}.\n"
    )
    sys.stdout.write(render(report, "table", color=_color(sys.stdout)))
    print(
        f"\nThe demo's log is {args.log}, apart from yours ({DEFAULT_LOG}, $TOKENLOG_FILE): read it with "
        f"`tokenlog report {args.log}`; --log FILE writes elsewhere."
    )
    return 0


def _add_serve(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = _command(commands, _serve)
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="the port to listen on (default: 0, a free one)")


def _serve(args: argparse.Namespace) -> int:
    """run the local Mistral-compatible server until Ctrl-C, to develop and test offline.

    Serve the Mistral (and OpenAI) API shapes on 127.0.0.1 with deterministic token counts (one token a
    word), as the demo and tokenlog's tests do. Prints the URL to give the SDK (server_url), then serves until
    Ctrl-C, and exits with status 0.
    """
    from .testing.server import serve

    if not 0 <= args.port <= 65535:
        _usage_error(args, f"--port {args.port}: expected 0 (a free port) to 65535")
    try:
        serve(args.host, args.port)
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    return 0


def _add_import_batch(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    batch = _command(commands, _import_batch)
    batch.add_argument("output", metavar="OUTPUT", help="a batch job's output file (JSON Lines)")
    batch.add_argument(
        "--log", metavar="FILE", help=f"the log to append to (default: $TOKENLOG_FILE or ./{DEFAULT_LOG})"
    )


def _import_batch(args: argparse.Namespace) -> int:
    """append the calls of a batch job's output file to a usage log, one row each.

    Read OUTPUT, the JSON Lines file a batch job (Mistral's or OpenAI's) writes, and append one row per call that
    succeeded to the log, with the time the call was made. The rows are marked as batch calls (ServiceTier
    batch, priced at the batch rate where the log has that column) and tagged with their custom_id. A line whose
    call failed, that has no usage, or whose request id the log has already (when it has a RequestId column) is
    skipped and said why. Exit status 0, or 2 if OUTPUT cannot be read.
    """
    from .batch import read_batch_output
    from .logs.read import open_log
    from .sinks import CsvSink, resolve_sink

    log = args.log or _default_log()
    known: set[str] = set()
    if os.path.exists(log):
        existing = open_log(log, errors="replace")
        index = existing.index("RequestId")
        if index is not None:
            known = {row[index] for row in existing.rows() if index < len(row) and row[index]}
    try:
        lines = list(read_batch_output(args.output, known_ids=known))
    except OSError as exc:
        raise CommandError(f"{args.output}: cannot be read: {exc.strerror or exc}") from None
    records = [line.record for line in lines if line.record is not None]
    sink = resolve_sink(log)
    columns: tuple[str, ...] = ()
    if isinstance(sink, CsvSink):  # a new CSV log keeps what marks a batch call; an existing one keeps its header
        if os.path.exists(log):
            columns = open_log(log).columns
        else:
            sink = CsvSink(sink.path, extra_fields=("RequestId", "Tags", "ServiceTier"))
            columns = sink.columns
    try:
        write_many = getattr(sink, "write_many", None)  # the file sinks: every row in one locked write
        if callable(write_many):
            write_many(records)
        else:
            for record in records:
                sink.write(record)
    finally:
        close = getattr(sink, "close", None)
        if callable(close):
            close()
    for line in lines:
        if line.skipped:
            print(f"{args.output}:{line.line}: skipped: {line.skipped}")
    if columns and "ServiceTier" not in columns:
        print(
            f"note: {log} has no ServiceTier column, so its rows do not say they were batch calls: "
            "tokenlog report prices them at the standard rate"
        )
    skipped = len(lines) - len(records)
    print(
        f"imported {counted(len(records), 'call')} of {args.output} into {log} as batch calls"
        + (f"; {counted(skipped, 'line')} skipped" if skipped else "")
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
        sys.stdout.flush()
    except (CommandError, LogFileError, PricingError) as exc:
        print(f"tokenlog {args.command}: {exc}", file=sys.stderr)
        return exc.status if isinstance(exc, CommandError) else 2
    except BrokenPipeError:  # `tokenlog report | head`: the reader left; end quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # killed by SIGPIPE
    except OSError as exc:  # the machine, not the input: a full disk, a directory we may not write to
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"tokenlog {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
