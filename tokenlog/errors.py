"""The warning and exception types tokenlog raises, and the one way it warns."""

from __future__ import annotations

import os
import sys
import types
import warnings

__all__ = ["BudgetExceeded", "SinkError", "TokenlogWarning", "article", "counted", "user_site", "warn"]


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


class BudgetExceeded(Exception):
    """A budget in force is spent (or a call could not be priced under a cost budget): the call was not made.

    Raised before the request, so nothing more is billed. ``budget`` is the :class:`~tokenlog.Budget`,
    ``limit`` what was exceeded (``"max_calls"``, ``"max_tokens"``, ``"max_cost_usd"``, or ``"unpriced"`` for
    a call whose model has no price), ``spent`` and ``allowed`` the amounts (``None`` for ``"unpriced"``),
    ``where`` where the budget was set (its file and line, and the session, function or ``configure()``).
    """

    def __init__(
        self, message: str, *, budget: object, limit: str, spent: float | None, allowed: float | None, where: str
    ) -> None:
        super().__init__(message)
        self.budget = budget
        self.limit = limit
        self.spent = spent
        self.allowed = allowed
        self.where = where

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled without its budget (a process pool sends a worker's exception to the parent): ``budget`` is
        ``None`` on the other side, every other attribute is kept."""
        return (_budget_exceeded, (str(self), self.limit, self.spent, self.allowed, self.where))


def _budget_exceeded(
    message: str, limit: str, spent: float | None, allowed: float | None, where: str
) -> BudgetExceeded:
    return BudgetExceeded(message, budget=None, limit=limit, spent=spent, allowed=allowed, where=where)


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = TokenlogWarning) -> None:
    """Warn at the user's line: the first frame on the stack outside the tokenlog package.

    Whatever path led here (a decorator, an instrumented SDK method, a session's end, a stream's
    last chunk), the warning names the file and line of the code that called into tokenlog,
    and the usual filters and once-per-line registry apply there. With no such frame (the exit
    handler, a background thread) it is attributed to the outermost frame.
    """
    frame = _user_frame()
    module_globals = frame.f_globals
    warnings.warn_explicit(
        message,
        category,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=module_globals.get("__name__", "<unknown>"),
        registry=module_globals.setdefault("__warningregistry__", {}),
    )


def _user_frame() -> types.FrameType:
    """The innermost frame on the stack outside the tokenlog package (else the outermost)."""
    frame = sys._getframe(2)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    return frame


def user_site() -> str:
    """The user's file and line that called into tokenlog, as ``path/to/file.py:12``."""
    frame = _user_frame()
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` and ``noun`` as a message says them: ``1 row``, ``2 rows``, ``1,204 worker processes``."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def article(word: str) -> str:
    """``word`` with its indefinite article, by its first letter: ``a dict``, ``an OCRResponse``, ``an SQLite log``."""
    return f"{'an' if word[:1].lower() in 'aeiou' or word.startswith(('SQL', 'HTTP')) else 'a'} {word}"
