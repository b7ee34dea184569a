"""resolve_sink: paths by suffix, built-in schemes, and third-party sinks found through entry points."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path

import pytest

import tokenlog
from tokenlog import CsvSink, JsonlSink, LoggingSink, MemorySink, SqliteSink, track_usage
from tokenlog.sinks import ENTRY_POINT_GROUP, resolve_sink


@pytest.mark.parametrize(
    ("spec", "kind", "name"),
    [
        ("usage.csv", CsvSink, "usage.csv"),
        ("usage.CSV", CsvSink, "usage.CSV"),
        ("usage.jsonl", JsonlSink, "usage.jsonl"),
        ("usage.NDJSON", JsonlSink, "usage.NDJSON"),
        ("usage.db", SqliteSink, "usage.db"),
        ("usage.sqlite3", SqliteSink, "usage.sqlite3"),
        ("csv://usage.txt", CsvSink, "usage.txt"),
        ("jsonl://usage.log", JsonlSink, "usage.log"),
        ("sqlite:///usage.data", SqliteSink, "usage.data"),
    ],
)
def test_a_path_or_scheme_names_the_sink_and_its_file(tmp_path: Path, spec: str, kind: type, name: str) -> None:
    sink = resolve_sink(spec)
    assert type(sink) is kind
    assert sink.path == str(tmp_path / name)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("spec", "found"),
    [("usage.json", "the suffix '.json'"), ("usage.log", "the suffix '.log'"), ("usage", "no suffix")],
)
def test_a_path_whose_suffix_names_no_format_is_refused_naming_the_accepted_ones(spec: str, found: str) -> None:
    """Before: any other suffix was silently a CSV file (``usage.json`` got CSV rows)."""
    with pytest.raises(ValueError, match="names no log format") as refused:
        resolve_sink(spec)
    assert str(refused.value) == (
        f"the sink '{spec}' has {found}, which names no log format tokenlog writes: end the file name in .csv (CSV), "
        f".jsonl or .ndjson (JSON Lines), .db, .sqlite or .sqlite3 (SQLite), or say the format: "
        f"'csv://{spec}', 'jsonl://{spec}'"
    )
    assert not Path(spec).exists()


@pytest.mark.parametrize(
    ("spec", "fixed"),
    [
        ("csv:u.csv", "csv://u.csv"),
        ("CSV:/var/u.csv", "csv:///var/u.csv"),
        ("jsonl:u.jsonl", "jsonl://u.jsonl"),
        ("sqlite:u.db", "sqlite:///u.db"),
        ("sqlite:/var/u.db", "sqlite:////var/u.db"),
    ],
)
def test_a_scheme_missing_its_slashes_is_refused_with_the_spec_it_meant(spec: str, fixed: str) -> None:
    """Before: ``csv:u.csv`` was a CSV file named ``csv:u.csv``."""
    with pytest.raises(ValueError, match="sink missing the '//' after the scheme") as refused:
        resolve_sink(spec)
    kind = fixed.split(":")[0]
    assert str(refused.value) == (
        f"the sink '{spec}' looks like a {kind} sink missing the '//' after the scheme: '{fixed}'"
    )
    resolve_sink(fixed)  # what it says works


def test_a_colon_after_an_unknown_name_or_a_drive_letter_is_part_of_the_file_name(tmp_path: Path) -> None:
    assert resolve_sink("run:3.csv").path == str(tmp_path / "run:3.csv")  # type: ignore[attr-defined]
    assert resolve_sink("C:usage.csv").path == str(tmp_path / "C:usage.csv")  # type: ignore[attr-defined]


def test_a_leading_tilde_is_the_home_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home = tmp_path / "home"
    assert resolve_sink("~/usage.csv").path == str(home / "usage.csv")  # type: ignore[attr-defined]
    assert resolve_sink("csv://~/usage.log").path == str(home / "usage.log")  # type: ignore[attr-defined]
    assert resolve_sink("jsonl://~/usage.log").path == str(home / "usage.log")  # type: ignore[attr-defined]
    assert resolve_sink("sqlite:///~/usage.db").path == str(home / "usage.db")  # type: ignore[attr-defined]
    assert resolve_sink(Path("~/usage.jsonl")).path == str(home / "usage.jsonl")  # type: ignore[attr-defined]


def test_a_path_object_is_resolved_by_its_suffix_too(tmp_path: Path) -> None:
    assert isinstance(resolve_sink(tmp_path / "usage.jsonl"), JsonlSink)
    assert isinstance(resolve_sink(tmp_path / "usage.csv"), CsvSink)


def test_sqlite_with_four_slashes_is_absolute_and_takes_a_table(tmp_path: Path) -> None:
    sink = resolve_sink(f"sqlite:///{tmp_path}/x/../usage.db?table=runs")
    assert isinstance(sink, SqliteSink)
    assert (sink.path, sink.table) == (str(tmp_path / "usage.db"), "runs")


def test_an_unknown_sqlite_option_is_refused_naming_the_known_one() -> None:
    with pytest.raises(ValueError, match=r"\['mode'\] are unknown; the only option is \?table=name"):
        resolve_sink("sqlite:///usage.db?mode=ro")


def test_logging_scheme_names_the_logger() -> None:
    sink = resolve_sink("logging://myapp.usage")
    assert isinstance(sink, LoggingSink)
    assert sink.logger is logging.getLogger("myapp.usage")
    assert resolve_sink("logging://").logger.name == "tokenlog"  # type: ignore[attr-defined]


def test_a_sink_object_is_passed_through() -> None:
    sink = MemorySink()
    assert resolve_sink(sink) is sink


def test_something_that_is_no_sink_is_refused_with_what_would_be() -> None:
    with pytest.raises(TypeError, match=r"42 is not a sink: pass an object with write\(record\), a file path"):
        resolve_sink(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty string"):
        resolve_sink("")


def test_an_unknown_scheme_lists_the_built_in_and_installed_names() -> None:
    with pytest.raises(
        ValueError, match=r"no sink is called 'kafka'\. Built in: csv, jsonl, logging, sqlite; installed"
    ):
        resolve_sink("kafka://broker:9092/usage")


PLUGIN = textwrap.dedent(
    '''
    """A sink from another distribution: writes each record's total to a file it is given."""

    class TotalsSink:
        def __init__(self, target):
            self.target = target

        def write(self, record):
            with open(self.target, "a") as f:
                f.write(f"{record.model} {record.total_tokens}\\n")

        def flush(self): ...

        def close(self): ...


    def not_a_sink(target):
        return "just a string"
    '''
)


@pytest.fixture
def plugin_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny installed distribution: a module and its dist-info, found on sys.path by importlib.metadata."""
    site = tmp_path / "site"
    (site / "tokenlog_totals_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "tokenlog_totals_plugin.py").write_text(PLUGIN)
    (site / "tokenlog_totals_plugin-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tokenlog-totals-plugin\nVersion: 1.0\n"
    )
    (site / "tokenlog_totals_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\n"
        "totals = tokenlog_totals_plugin:TotalsSink\n"
        "broken = tokenlog_totals_plugin:not_a_sink\n"
    )
    monkeypatch.syspath_prepend(str(site))
    return site


def test_an_entry_point_sink_is_found_by_its_scheme_and_gets_the_target(
    plugin_distribution: Path, tmp_path: Path
) -> None:
    sink = resolve_sink("totals://totals.txt")
    assert type(sink).__name__ == "TotalsSink"
    assert sink.target == "totals.txt"  # type: ignore[attr-defined]


def test_an_entry_point_sink_receives_rows_through_configure(plugin_distribution: Path, tmp_path: Path) -> None:
    tokenlog.configure(sinks=["totals://totals.txt", "usage.jsonl"])

    @track_usage
    def ask() -> dict[str, object]:
        return {"model": "mistral-small", "usage": {"prompt_tokens": 3, "completion_tokens": 4}}

    ask()
    ask()
    assert (tmp_path / "totals.txt").read_text() == "mistral-small 7\nmistral-small 7\n"
    assert len((tmp_path / "usage.jsonl").read_text().splitlines()) == 2
    assert json.loads((tmp_path / "usage.jsonl").read_text().splitlines()[0])["total_tokens"] == 7


def test_an_unknown_scheme_lists_installed_plugins(plugin_distribution: Path) -> None:
    with pytest.raises(ValueError, match=r"installed plugins \(entry points in the group 'tokenlog.sinks'\): .*totals"):
        resolve_sink("kafka://broker")


def test_an_entry_point_that_makes_no_sink_is_reported_with_its_object_reference(plugin_distribution: Path) -> None:
    with pytest.raises(TypeError, match=r"plugin 'broken' \(tokenlog_totals_plugin:not_a_sink\) made 'just a string'"):
        resolve_sink("broken://x")
