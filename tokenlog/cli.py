"""The ``tokenlog`` command (also ``python -m tokenlog``)."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__

__all__ = ["main"]

DEFAULT_LOG = "mistral_usage_log.csv"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenlog", description="Record and read LLM token usage logs (mistral_usage_log.csv)."
    )
    parser.add_argument("--version", action="version", version=f"tokenlog {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="make real mistralai SDK calls against a local server and write the usage log (offline)",
        description="Start a Mistral-compatible server on 127.0.0.1, call it with the mistralai SDK through "
        "@track_usage and usage_session(), write the usage log, and print what was spent. No API key, no network.",
    )
    demo.add_argument(
        "-o",
        "--output",
        default=os.environ.get("TOKENLOG_FILE") or DEFAULT_LOG,
        help="the CSV file to append to (default: $TOKENLOG_FILE or ./%(default)s)",
    )
    demo.add_argument("--processes", type=int, default=3, help="worker processes sharing the log (default: 3)")
    demo.set_defaults(run=_demo)
    return parser


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.processes < 0:
        raise SystemExit("tokenlog demo: --processes must be >= 0")
    output = Path(args.output)
    session = run_demo(output, processes=args.processes)
    print(f"Recorded {session.calls} calls in this process ({session.total_tokens} tokens), by model:")
    for model, totals in sorted(session.by_model.items()):
        print(f"  {model:<24} {totals.calls:>4} calls {totals.total_tokens:>7} tokens")
    print(f"{args.processes} worker processes appended to the same file.")
    print(_file_summary(output))
    return 0


def _file_summary(path: Path) -> str:
    """One line about a usage log: its rows and tokens, read with the standard csv module."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    tokens = sum(int(row["TotalTokens"]) for row in rows)
    return f"{path}: {len(rows)} rows, {tokens} total tokens"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
