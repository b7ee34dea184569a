"""Where records go. A sink is any object with ``write(record)``, ``flush()`` and ``close()``."""

from __future__ import annotations

import os

from .base import BatchSink, Sink
from .csv import CsvSink
from .memory import MemorySink

__all__ = ["BatchSink", "CsvSink", "MemorySink", "Sink", "resolve_sink"]


def resolve_sink(spec: Sink | str | os.PathLike[str]) -> Sink:
    """A sink for ``spec``: a sink object as is, a string or path as the CSV file it names."""
    if isinstance(spec, (str, os.PathLike)):
        return CsvSink(spec)
    if callable(getattr(spec, "write", None)):
        return spec
    raise TypeError(f"{spec!r} is not a sink: pass an object with write(record), or a CSV file path")
