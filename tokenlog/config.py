"""Process-wide defaults: where records go when nobody said, what a failing sink does.

Environment variables, read when tokenlog first needs them and again at every ``configure()``:

- ``TOKENLOG_FILE``: the default log file (else ``./mistral_usage_log.csv``, made absolute
  when the first row is written); its suffix says the format (``.csv``, ``.jsonl``/``.ndjson``,
  ``.db``/``.sqlite``/``.sqlite3``; any other is an error when tokenlog reads the environment), and a
  leading ``~`` is the home directory;
- ``TOKENLOG_DISABLE=1``: record nothing at all (decorators pass calls straight through);
- ``TOKENLOG_ON_ERROR=raise``: strict mode, as ``configure(on_error="raise")``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ._fork import fork_safe_lock
from .delivery.guard import set_strict
from .format import DEFAULT_FILE, file_format
from .limits import Limit
from .sinks import Sink, SinkSpec, resolve_sink

__all__ = ["configure", "default_file", "default_sinks"]

OnError = Literal["warn", "raise"]

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """The defaults in force; replaced as a whole by :func:`configure`."""

    enabled: bool
    on_error: OnError
    sinks: tuple[Sink, ...] | None  # None: the default file, created on first use
    default_file: str  # $TOKENLOG_FILE (its suffix checked), else ./mistral_usage_log.csv
    budgets: tuple[Limit, ...] = ()  # configure(budget=...): enforced on every call, everywhere


def _from_environment() -> Settings:
    on_error = os.environ.get("TOKENLOG_ON_ERROR", "warn").strip().lower()
    if on_error not in ("warn", "raise"):
        raise ValueError(f"TOKENLOG_ON_ERROR is {on_error!r}, expected 'warn' or 'raise'")
    enabled = os.environ.get("TOKENLOG_DISABLE", "").strip().lower() not in _TRUE
    return Settings(enabled=enabled, on_error=on_error, sinks=None, default_file=default_file())  # type: ignore[arg-type]


def default_file() -> str:
    """The log that gets rows when nobody configured sinks: ``$TOKENLOG_FILE`` (``~`` expanded), else
    ``mistral_usage_log.csv``. A ``TOKENLOG_FILE`` whose suffix names no format raises ``ValueError``."""
    path = os.path.expanduser(os.environ.get("TOKENLOG_FILE", "").strip()) or DEFAULT_FILE
    if path != DEFAULT_FILE:
        file_format(path, "TOKENLOG_FILE", "; or leave it unset and pass configure(sinks=['csv://FILE'])")
    return path


settings = _from_environment()
set_strict(settings.on_error == "raise")
_default: tuple[Sink, ...] | None = None
_lock = fork_safe_lock()


def configure(
    *,
    sinks: Iterable[SinkSpec] | None = None,
    on_error: OnError | None = None,
    enabled: bool | None = None,
    budget: Limit | None = None,
) -> None:
    """Set where records go by default and how sink failures are handled.

    Every call starts again from the environment, so ``configure()`` with no arguments
    restores the defaults. ``sinks`` replaces the default CSV file: sink objects, paths and
    ``scheme://`` strings in any mix (see :func:`~tokenlog.sinks.resolve_sink`; ``[]`` writes
    nowhere, sessions still count). ``on_error="warn"`` (the default) keeps
    a failing sink's rows and warns once; ``"raise"`` raises :class:`~tokenlog.SinkError` into
    the call. ``enabled=False`` records nothing. ``budget`` (a :class:`~tokenlog.Budget`) is enforced on
    every call of the process, besides the budgets of sessions and decorated functions.

    >>> import tokenlog
    >>> tokenlog.configure(sinks=[tokenlog.MemorySink()])
    >>> tokenlog.configure()  # back to $TOKENLOG_FILE or ./mistral_usage_log.csv
    """
    global settings, _default
    base = _from_environment()
    if on_error is not None and on_error not in ("warn", "raise"):
        raise ValueError(f"on_error is {on_error!r}, expected 'warn' or 'raise'")
    resolved = None if sinks is None else tuple(resolve_sink(spec) for spec in sinks)
    if budget is not None:
        budget.attach("configure(budget=...)")
    with _lock:
        settings = Settings(
            enabled=base.enabled if enabled is None else enabled,
            on_error=on_error or base.on_error,
            sinks=resolved,
            default_file=base.default_file,
            budgets=() if budget is None else (budget,),
        )
        set_strict(settings.on_error == "raise")
        _default = None


def default_sinks() -> tuple[Sink, ...]:
    """The sinks that get records nobody routed elsewhere (the CSV file is made on first use)."""
    configured = settings.sinks
    if configured is not None:
        return configured
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = (resolve_sink(settings.default_file),)
    return _default


def created_default_sinks() -> tuple[Sink, ...]:
    """The default sinks, without creating the CSV sink if nothing was recorded yet."""
    return settings.sinks if settings.sinks is not None else (_default or ())
