"""The warning and exception types tokenlog raises, and the one way it warns."""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["SinkError", "TokenlogWarning", "article", "counted", "warn"]


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


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = TokenlogWarning) -> None:
    """Warn at the user's line: the first frame on the stack outside the tokenlog package.

    Whatever path led here (a decorator, an instrumented SDK method, a session's end, a stream's
    last chunk), the warning names the file and line of the code that called into tokenlog,
    and the usual filters and once-per-line registry apply there. With no such frame (the exit
    handler, a background thread) it is attributed to the outermost frame.
    """
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    module_globals = frame.f_globals
    warnings.warn_explicit(
        message,
        category,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=module_globals.get("__name__", "<unknown>"),
        registry=module_globals.setdefault("__warningregistry__", {}),
    )


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun`` as a message says them: ``1 row``, ``2 rows``, ``1,204 worker processes``."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def article(word: str) -> str:
    """``word`` with its indefinite article, by its first letter: ``a dict``, ``an OCRResponse``, ``an SQLite log``."""
    return f"{'an' if word[:1].lower() in 'aeiou' or word.startswith(('SQL', 'HTTP')) else 'a'} {word}"
