"""Property tests: valid usage round-trips through the CSV, and the fast row formatter matches the general one.

(Whatever a response carries, the call survives: tests/reliability/test_reliability_input.py.)
"""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tokenlog
from tests.helpers import read_rows
from tokenlog import CsvSink, UsageRecord, track_usage
from tokenlog.sinks._fields import iso_timestamp
from tokenlog.sinks.csv import MANDATORY_COLUMNS, _mandatory_row, format_row

counts = st.integers(min_value=0, max_value=10**12)
models = st.text(min_size=1, max_size=40).filter(lambda m: "\x00" not in m and m.strip() == m and m.isprintable())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prompt=counts, completion=counts, model=models)
def test_valid_usage_round_trips_through_the_csv(tmp_path: Path, prompt: int, completion: int, model: str) -> None:
    path = tmp_path / "round-trip.csv"
    path.unlink(missing_ok=True)
    sink = CsvSink(path)
    tokenlog.configure(sinks=[sink])

    @track_usage
    def ask() -> dict[str, object]:
        return {"model": model, "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ask()
    sink.close()
    (row,) = read_rows(path)
    assert (row["Model"], int(row["PromptTokens"]), int(row["CompletionTokens"]), int(row["TotalTokens"])) == (
        model,
        prompt,
        completion,
        prompt + completion,
    )


@settings(max_examples=300, deadline=None)
@given(
    model=st.text(max_size=30),
    prompt=counts,
    completion=counts,
    newline=st.sampled_from(["\n", "\r\n"]),
    when=st.datetimes(timezones=st.just(timezone.utc)),
)
def test_the_fast_row_formatter_writes_what_the_general_one_writes(
    model: str, prompt: int, completion: int, newline: str, when: datetime
) -> None:
    record = UsageRecord(when, model, prompt, completion, prompt + completion)
    assert _mandatory_row(record, newline.encode()) == format_row(record, MANDATORY_COLUMNS, newline).encode()


@settings(max_examples=200, deadline=None)
@given(moments=st.lists(st.datetimes(timezones=st.just(timezone.utc)), min_size=1, max_size=20))
def test_the_cached_timestamp_formatter_matches_isoformat(moments: list[datetime]) -> None:
    # Sorted and unsorted, repeated seconds and new ones: the cached prefix must never leak into another second.
    for when in [*moments, *sorted(moments), *(m.replace(microsecond=0) for m in moments)]:
        record = UsageRecord(when, "m", 1, 1, 2)
        assert iso_timestamp(record) == when.isoformat(timespec="microseconds")
