"""``tokenlog import-batch``: the calls of a batch job's output file, as rows of a usage log.

A batch job (Mistral's ``/v1/batch/jobs``, OpenAI's Batch API) writes one JSON object a line:
``{"id": ..., "custom_id": "0", "response": {"status_code": 200, "body": {...a chat completion...}},
"error": null}``. Each line whose call succeeded becomes one record, marked ``service_tier="batch"`` (so
that reports price it at the batch rate), timed when the call was made (the body's ``created``) and
tagged with its ``custom_id``. A line that failed, or that carries no usage, is skipped and said why.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

from .extract import extract_usage
from .record import UsageRecord

__all__ = ["BatchLine", "read_batch_output"]


@dataclass
class BatchLine:
    """One line of a batch output file: its record, or why it has none."""

    line: int
    record: UsageRecord | None = None
    skipped: str | None = None


def read_batch_output(path: str | os.PathLike[str], *, known_ids: Collection[str] = ()) -> Iterator[BatchLine]:
    """Each non-blank line of the batch output file at ``path``, as a record or a reason to skip it.

    A line whose request id is in ``known_ids`` (a log it was imported into already) is skipped. Raises
    ``OSError`` if the file cannot be read.
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, 1):
            if text.strip():
                yield _line(number, text, known_ids)


def _line(number: int, text: str, known_ids: Collection[str]) -> BatchLine:
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        return BatchLine(number, skipped=f"not JSON ({exc.msg})")
    if not isinstance(item, dict):
        return BatchLine(number, skipped="not a JSON object")
    response = item.get("response")
    status = response.get("status_code") if isinstance(response, dict) else None
    if item.get("error") or (status is not None and status != 200):
        return BatchLine(number, skipped=f"the call failed (status {status}, error {item.get('error')!r})")
    record = extract_usage(item)
    if record is None:
        return BatchLine(number, skipped="no usage in response.body")
    if record.request_id is not None and record.request_id in known_ids:
        return BatchLine(number, skipped=f"{record.request_id} is in the log already")
    body = response.get("body") if isinstance(response, dict) else None
    created = body.get("created") if isinstance(body, dict) else None
    when = record.timestamp
    if isinstance(created, (int, float)) and not isinstance(created, bool) and 0 < created < 32503680000:
        when = datetime.fromtimestamp(created, timezone.utc)  # the call's own time (before the year 3000)
    custom_id = item.get("custom_id")
    tags = {"custom_id": str(custom_id)} if custom_id is not None else {}
    return BatchLine(number, dataclasses.replace(record, timestamp=when, service_tier="batch", tags=tags))
