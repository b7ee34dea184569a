"""The warning and exception types tokenlog raises."""

from __future__ import annotations

__all__ = ["SinkError", "TokenlogWarning"]


class TokenlogWarning(UserWarning):
    """A problem tokenlog noticed and survived: bad usage data, a sink that could not write.

    Your call still returned its result. Turn these into errors in your own tests with
    ``warnings.simplefilter("error", tokenlog.TokenlogWarning)``.
    """


class SinkError(Exception):
    """A sink could not store a record.

    Raised into your call only in strict mode (``configure(on_error="raise")``); otherwise the
    record is kept for a retry and a :class:`TokenlogWarning` is issued instead.
    """
