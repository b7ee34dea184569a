"""Bad input never breaks the call: whatever a response holds, the valid part is kept and the rest is named in one
warning; and any text round-trips through every file sink.

Responses are built by Hypothesis as dicts and as objects: usage missing, ``None``, a scalar or a container;
counts missing, ``None``, valid, huge, negative, floats, bools, strings, nested garbage, sets and bytes (not
JSON-able), or attributes / keys that raise when read; models and ids of every type, or raising.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
import warnings
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokenlog
from tokenlog import CsvSink, JsonlSink, SqliteSink, UsageRecord, track_usage
from tokenlog.record import MAX_COUNT

ABSENT = object()  # the field is not there at all


class Raises:
    """Reading the field raises this."""

    def __repr__(self) -> str:
        return "Raises()"


RAISES = Raises()
COUNT_NAMES = ("prompt_tokens", "completion_tokens", "total_tokens")


class HostileMapping(Mapping[str, object]):
    """A mapping whose keys set to RAISES raise when read (as a lazy or broken client object might)."""

    def __init__(self, fields: dict[str, object]) -> None:
        self._fields = fields

    def __getitem__(self, key: str) -> object:
        value = self._fields[key]
        if value is RAISES:
            raise RuntimeError(f"cannot read {key}")
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)


def as_object(fields: dict[str, object]) -> object:
    """An object with these attributes; those set to RAISES are properties that raise."""

    def raising(name: str) -> property:
        def read(self: object) -> object:
            raise RuntimeError(f"cannot read {name}")

        return property(read)

    attributes = {name: raising(name) for name, value in fields.items() if value is RAISES}
    kind = type("Response", (), attributes)
    instance = kind()
    for name, value in fields.items():
        if value is not RAISES:
            setattr(instance, name, value)
    return instance


def build(fields: dict[str, object], shape: str) -> object:
    present = {name: value for name, value in fields.items() if value is not ABSENT}
    if shape == "dict":
        return HostileMapping(present) if RAISES in present.values() else dict(present)
    return as_object(present)


garbage = st.one_of(
    st.integers(max_value=-1),
    st.integers(min_value=MAX_COUNT + 1, max_value=2**70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sets(st.integers(), max_size=2),  # not JSON-able
    st.binary(max_size=3),
)
count_values = st.one_of(
    st.just(ABSENT), st.none(), st.integers(0, 10**12), st.just(MAX_COUNT), garbage, st.just(RAISES)
)
text_values = st.one_of(st.just(ABSENT), st.none(), st.text(max_size=12), garbage, st.just(RAISES))


@st.composite
def responses(draw: st.DrawFn) -> tuple[object, dict[str, object]]:
    """A response and what it was built from: counts, usage container, model and id."""
    names = draw(st.sampled_from([COUNT_NAMES, ("input_tokens", "output_tokens", "total_tokens")]))  # Responses API
    counts = {name: draw(count_values) for name in names}
    usage_kind = draw(st.sampled_from(["dict", "object", "absent", "none", "scalar", "raises"]))
    usage: object
    if usage_kind in ("dict", "object"):
        usage = build(counts, usage_kind)
    else:
        usage = {"absent": ABSENT, "none": None, "scalar": draw(garbage), "raises": RAISES}[usage_kind]
    fields = {
        "usage": usage,
        "model": draw(text_values),
        "id": draw(text_values),
        "extra": draw(st.sampled_from([ABSENT, {1, 2}, b"\xff", object()])),  # not JSON-able
    }
    spec = {"counts": counts, "usage": usage_kind, "model": fields["model"], "id": fields["id"]}
    return build(fields, draw(st.sampled_from(["dict", "object"]))), spec


def usable(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_COUNT


def read_as(counts: dict[str, object]) -> dict[str, object]:
    """The counts as tokenlog reads them: input/output_tokens only if there is no prompt_tokens but an input_tokens."""
    if "input_tokens" in counts and counts["input_tokens"] in (ABSENT, None):
        return {"prompt_tokens": ABSENT, "completion_tokens": ABSENT, "total_tokens": counts["total_tokens"]}
    return counts


def expected_counts(counts: dict[str, object]) -> tuple[int, int, int] | None:
    """The documented rule: any two valid counts give the third; a prompt count alone is an embedding; a total
    above prompt + completion counts the difference as prompt tokens (input the API counts apart)."""
    prompt, completion, total = counts.values()
    absent = [value is ABSENT or value is None for value in counts.values()]
    if usable(prompt) and absent[1] and absent[2]:
        return prompt, 0, prompt  # type: ignore[return-value]
    known = [value if usable(value) else None for value in (prompt, completion, total)]
    if known.count(None) > 1:
        return None
    p, c, t = known
    if t is None:
        t = p + c  # type: ignore[operator]
    elif p is None:
        p = t - c  # type: ignore[operator]
    elif c is None:
        c = t - p
    elif t > p + c:  # type: ignore[operator]
        p = t - c  # type: ignore[operator]
    return (p, c, t) if 0 <= p <= MAX_COUNT and 0 <= c <= MAX_COUNT and 0 <= t <= MAX_COUNT else None  # type: ignore[operator,return-value]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=responses())
def test_any_response_returns_unchanged_keeps_its_valid_part_and_names_the_rest_in_one_warning(
    case: tuple[object, dict[str, object]],
) -> None:
    response, spec = case
    sink = tokenlog.MemorySink()

    @track_usage(sinks=[sink])
    def ask() -> object:
        return response

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ask() is response  # never raises, never replaces the result
    about = [str(w.message) for w in caught if " without token usage" not in str(w.message)]
    assert len(about) <= 1  # at most one warning about this response
    said = about[0] if about else ""

    if spec["usage"] in ("absent", "none"):
        assert sink.records == []
        assert said == ""  # nothing to say but the decorator's "returned ... without token usage"
        return
    if spec["usage"] in ("scalar", "raises"):
        assert sink.records == []
        assert said  # the usage was there but unusable: said so
        return
    counts = read_as(spec["counts"])  # type: ignore[arg-type]
    expected = expected_counts(counts)
    if expected is None:
        assert sink.records == []
        assert "no row written" in said
    else:
        (record,) = sink.records
        assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == expected
        model, request_id = spec["model"], spec["id"]
        assert record.model == (model if isinstance(model, str) and model else "unknown")
        assert record.request_id == (request_id if isinstance(request_id, str) and request_id else None)
    for name, value in counts.items():
        if value is not ABSENT and value is not None and not usable(value):
            assert f"usage.{name}" in said  # every unusable count is named
    if spec["model"] is RAISES or not (spec["model"] in (ABSENT, None) or isinstance(spec["model"], str)):
        assert "model" in said
    if spec["id"] is RAISES:
        assert "id" in said
    if expected is not None and not said:  # nothing was named: then nothing was changed
        assert all(usable(value) or value is ABSENT or value is None for value in counts.values())


# Every kind of awkward text: CSV quoting, line breaks, NUL, lone surrogates, spreadsheet formula starts.
awkward = st.text(
    alphabet=st.one_of(
        st.sampled_from([",", '"', "\n", "\r", "\0", "=", "+", "-", "@", "'", "\t", " ", "\\", "\udc80", "\ud800"]),
        st.characters(),
    ),
    max_size=12,
)


def escaped(text: str) -> str:
    """What CSV and SQLite store for text that is not valid Unicode (a lone surrogate): a backslash escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, strict=True))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=awkward.filter(bool), session=awkward, function=awkward, request_id=awkward, tag=awkward)
def test_any_text_round_trips_through_csv_jsonl_and_sqlite(
    tmp_path: Path, model: str, session: str, function: str, request_id: str, tag: str
) -> None:
    for name in ("u.csv", "u.jsonl", "u.db", "u.db-wal", "u.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    record = UsageRecord(
        datetime(2026, 6, 1, tzinfo=timezone.utc),
        model,
        1,
        2,
        3,
        session=session,
        function=function,
        request_id=request_id,
        tags={tag: tag, "k": "v"},
    )
    texts = {"model": model, "session": session, "function": function, "request_id": request_id}
    sinks = [
        CsvSink(tmp_path / "u.csv", extra_fields=("Session", "Function", "RequestId", "Tags")),
        JsonlSink(tmp_path / "u.jsonl"),
        SqliteSink(tmp_path / "u.db"),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a lone surrogate is escaped with a warning (tested in test_sinks_files)
        for sink in sinks:
            sink.write(record)
            sink.close()

    (line,) = (tmp_path / "u.jsonl").read_text(encoding="ascii").splitlines()
    item = json.loads(line)
    assert {key: item[key] for key in texts} == texts  # exact, surrogates too (JSON escapes them)
    assert item["tags"] == {tag: tag, "k": "v"}

    with sqlite3.connect(tmp_path / "u.db") as connection:
        row = connection.execute("SELECT model, session, function, request_id, tags FROM usage").fetchone()
    connection.close()
    assert list(row[:4]) == [escaped(text) for text in texts.values()]
    assert json.loads(row[4]) == {tag: tag, "k": "v"}

    if "\0" in "".join(texts.values()) and sys.version_info < (3, 11):
        return  # Python 3.10's csv module refuses any line holding NUL (3.11 reads it)
    (cells,) = read_csv(tmp_path / "u.csv")
    assert [cells["Model"], cells["Session"], cells["Function"], cells["RequestId"]] == [
        escaped(text) for text in texts.values()
    ]
    assert json.loads(cells["Tags"]) == {tag: tag, "k": "v"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(model=awkward.filter(lambda text: bool(text) and not any("\ud800" <= c <= "\udfff" for c in text)))
def test_the_formula_guard_leaves_no_cell_a_spreadsheet_would_run_and_is_undone_by_one_quote(
    tmp_path: Path, model: str
) -> None:
    path = tmp_path / "guarded.csv"
    path.unlink(missing_ok=True)
    sink = CsvSink(path, extra_fields=("Session",), formula_guard=True)
    sink.write(UsageRecord(datetime(2026, 6, 1, tzinfo=timezone.utc), model, 1, 2, 3, session=model))
    sink.close()
    if "\0" in model and sys.version_info < (3, 11):
        return
    (cells,) = read_csv(path)
    for written in (cells["Model"], cells["Session"]):
        assert not written.startswith(("=", "+", "-", "@", "\t", "\r"))
        assert (written[1:] if written.startswith("'") else written) == model  # one leading quote undoes it


def test_the_formula_guard_is_off_by_default_and_exact_values_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    CsvSink(path).write(UsageRecord(datetime(2026, 6, 1, tzinfo=timezone.utc), "=HYPERLINK(1)", 1, 2, 3))
    assert read_csv(path)[0]["Model"] == "=HYPERLINK(1)"
    guarded = tmp_path / "guarded.csv"
    CsvSink(guarded, formula_guard=True).write(
        UsageRecord(datetime(2026, 6, 1, tzinfo=timezone.utc), "=HYPERLINK(1)", 1, 2, 3)
    )
    assert guarded.read_text().splitlines()[1] == "2026-06-01T00:00:00.000000+00:00,'=HYPERLINK(1),1,2,3"


def test_a_count_too_large_for_any_database_is_not_kept_so_it_never_blocks_the_sqlite_sink(tmp_path: Path) -> None:
    """Before, 10**30 became a row SQLite refused (OverflowError) on every retry, holding back every row after it."""
    sink = SqliteSink(tmp_path / "usage.db")

    @track_usage(sinks=[sink])
    def ask(prompt: int, total: int | None = None) -> dict[str, object]:
        usage = {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": total}
        return {"model": "m", "usage": usage}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ask(10**30)  # nothing to work it out from: no row
        ask(10**30, total=5)  # the total and the completion give it: 4
        ask(2)
    assert "usage.prompt_tokens is 1000000000000000000000000000000, expected a count below 2**63" in str(
        caught[0].message
    )
    assert [s.pending for s in tokenlog.sink_status() if s.sink is sink] == [0]
    with sqlite3.connect(tmp_path / "usage.db") as connection:
        assert connection.execute("SELECT prompt_tokens FROM usage ORDER BY rowid").fetchall() == [(4,), (2,)]
    connection.close()


def test_a_record_made_by_hand_refuses_a_count_too_large_for_any_database() -> None:
    when = datetime(2026, 6, 1, tzinfo=timezone.utc)
    UsageRecord(when, "m", MAX_COUNT, 0, MAX_COUNT)
    with pytest.raises(ValueError, match=r"prompt_tokens is 9223372036854775808, expected .* below 2\*\*63"):
        UsageRecord(when, "m", MAX_COUNT + 1, 0, MAX_COUNT + 1)
