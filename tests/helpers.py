"""Small helpers shared by the tests."""

from __future__ import annotations

import csv
from pathlib import Path


def read_rows(path: Path | str) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts, read with the standard csv module (a strict reader)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def chat_response(prompt: int = 10, completion: int = 5, *, model: str = "mistral-small-latest") -> dict[str, object]:
    """The JSON a /v1/chat/completions endpoint returns, as requests/httpx give it."""
    return {
        "id": "cmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }
