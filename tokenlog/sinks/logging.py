"""LoggingSink: one standard-library log record per row."""

from __future__ import annotations

import logging

from ..record import UsageRecord
from ._fields import fields

__all__ = ["LoggingSink"]


class LoggingSink:
    """Logs each record on ``logger`` at ``level``, with its fields in ``extra``.

    The message reads ``mistral-small: 12 prompt + 5 completion = 17 tokens``; the log record
    also carries ``timestamp`` (ISO 8601 text), ``model``, ``prompt_tokens``,
    ``completion_tokens``, ``total_tokens``, ``session``, ``function``, ``latency_ms``,
    ``request_id`` and ``tags`` (a dict) as attributes, for JSON formatters and log shippers.
    ``logger`` is a name or a :class:`logging.Logger`; ``level`` a number or a name (``"INFO"``).

    >>> import datetime, sys
    >>> logger = logging.getLogger("example.usage")
    >>> logger.setLevel(logging.INFO)
    >>> logger.addHandler(logging.StreamHandler(sys.stdout))
    >>> now = datetime.datetime(2023, 10, 27, 10, 30, tzinfo=datetime.timezone.utc)
    >>> LoggingSink(logger).write(UsageRecord(now, "mistral-small", 12, 5, 17))
    mistral-small: 12 prompt + 5 completion = 17 tokens
    """

    def __init__(self, logger: str | logging.Logger = "tokenlog", level: int | str = logging.INFO) -> None:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        elif not isinstance(logger, logging.Logger):
            raise TypeError(f"LoggingSink logger is {logger!r}, expected a logger name or a logging.Logger")
        self.logger = logger
        self.level = _level(level)

    def __repr__(self) -> str:
        return f"LoggingSink({self.logger.name!r}, {logging.getLevelName(self.level)})"

    def write(self, record: UsageRecord) -> None:
        """Log ``record``; handlers deal with their own errors, so this does not raise."""
        if self.logger.isEnabledFor(self.level):
            self.logger.log(
                self.level,
                "%s: %d prompt + %d completion = %d tokens",
                record.model,
                record.prompt_tokens,
                record.completion_tokens,
                record.total_tokens,
                extra=fields(record),
            )

    def flush(self) -> None:
        """Flush the handlers of the logger and its ancestors."""
        logger: logging.Logger | None = self.logger
        while logger is not None:
            for handler in logger.handlers:
                handler.flush()
            logger = logger.parent if logger.propagate else None

    def close(self) -> None:
        """Nothing to close: the handlers belong to your logging configuration."""


def _level(level: int | str) -> int:
    if isinstance(level, bool) or not isinstance(level, (int, str)):
        raise TypeError(f"LoggingSink level is {level!r}, expected a number or a level name such as 'INFO'")
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"LoggingSink level {level!r} is not a logging level name (DEBUG, INFO, WARNING, ...)")
    return number
