"""Helpers for testing code that uses tokenlog, without a network.

:func:`capture_usage` collects the records your code makes, for your own tests; :func:`reset` puts
tokenlog's process-wide state back as it was at import, for a fixture between tests.
:mod:`tokenlog.testing.server` holds a Mistral-compatible HTTP server that listens on 127.0.0.1 and answers
chat, FIM, embeddings, agents, completions, responses and conversations requests with deterministic token counts.
Importing this package imports nothing beyond tokenlog and the standard library.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .. import config, route
from ..delivery.guard import failing
from ..identity import recorded
from ..instrumentation import uninstrument
from ..record import UsageRecord

__all__ = ["capture_usage", "reset"]


def reset() -> None:
    """Put tokenlog's process-wide state back as it is at import: run it between tests.

    The configuration comes again from the environment (``configure()``), SDK methods are
    unpatched (``uninstrument()``), open :func:`capture_usage` blocks stop capturing, the
    memory of responses already recorded is cleared (a response object made again in the next
    test is recorded again), and rows that failing sinks were holding for a retry are dropped (a
    test's broken sink does not keep retrying in the next tests, nor fill a fallback file at
    exit). Sinks and their files are left alone.

    A pytest fixture that does it around every test::

        import pytest
        import tokenlog.testing

        @pytest.fixture(autouse=True)
        def _tokenlog_reset():
            tokenlog.testing.reset()
            yield
            tokenlog.testing.reset()
    """
    config.configure()
    uninstrument()
    route.stop_capture()
    recorded.clear()
    for guarded in failing():
        guarded.take_pending()


@contextlib.contextmanager
def capture_usage(*, write: bool = False) -> Iterator[list[UsageRecord]]:
    """Collect every record made while the block runs, in any thread, into the list it yields.

    Inside the block the records go to that list instead of any sink, so your tests leave no
    files behind; sessions still count them. With ``write=True`` they are also written where
    they would have gone. Blocks nest: each gets every record.

    >>> import tokenlog
    >>> from tokenlog.testing import capture_usage
    >>> @tokenlog.track_usage
    ... def ask(prompt):
    ...     return {"model": "mistral-small", "usage": {"prompt_tokens": 9, "completion_tokens": 4}}
    >>> with capture_usage() as records:
    ...     _ = ask("hi")
    >>> [(r.model, r.total_tokens) for r in records]
    [('mistral-small', 13)]
    """
    capture = route.start_capture(write=write)
    try:
        yield capture.records
    finally:
        route.stop_capture(capture)
