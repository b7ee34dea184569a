"""Sinks from short specs: a file path, ``scheme://target``, or a plugin's entry point."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Union

from ..format import file_format
from .base import Sink
from .csv import CsvSink
from .jsonl import JsonlSink
from .logging import LoggingSink
from .sqlite import SqliteSink

__all__ = ["ENTRY_POINT_GROUP", "SinkSpec", "resolve_sink"]

SinkSpec = Union[Sink, str, "os.PathLike[str]"]
"""What ``sinks=[...]`` accepts: a sink object, a file path, or a ``scheme://target`` string."""

ENTRY_POINT_GROUP = "tokenlog.sinks"
"""The entry-point group where other packages register sink schemes."""

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9_.+-]*)://(.*)\Z", re.DOTALL)
_SCHEME_WITHOUT_SLASHES = re.compile(r"([A-Za-z][A-Za-z0-9_.+-]+):(?!//)(.*)\Z", re.DOTALL)
"""``csv:usage.csv``, ``sqlite:/usage.db``: a scheme missing its ``//`` (one letter is a Windows drive)."""
_BY_FORMAT: dict[str, Callable[[str], Sink]] = {"csv": CsvSink, "jsonl": JsonlSink, "sqlite": SqliteSink}


def _sqlite(target: str) -> Sink:
    # As in SQLAlchemy: sqlite:///usage.db is relative, sqlite:////var/usage.db absolute.
    path, _, query = target.partition("?")
    options = dict(part.partition("=")[::2] for part in query.split("&") if part)
    unknown = set(options) - {"table"}
    if unknown:
        raise ValueError(f"sqlite:// sink options {sorted(unknown)} are unknown; the only option is ?table=name")
    return SqliteSink(os.path.expanduser(path.removeprefix("/")), table=options.get("table", "usage"))


_BUILT_IN: dict[str, Callable[[str], Sink]] = {
    "csv": lambda target: CsvSink(os.path.expanduser(target)),
    "jsonl": lambda target: JsonlSink(os.path.expanduser(target)),
    "sqlite": _sqlite,
    "logging": lambda target: LoggingSink(target or "tokenlog"),
}


def resolve_sink(spec: SinkSpec) -> Sink:
    """The sink ``spec`` names. Built-in forms:

    - a sink object: itself;
    - a path (``str`` or ``os.PathLike``) by its suffix: ``.csv`` a :class:`CsvSink`,
      ``.jsonl``/``.ndjson`` a :class:`JsonlSink`, ``.db``/``.sqlite``/``.sqlite3`` a
      :class:`SqliteSink`; any other suffix, or none, raises ``ValueError``;
    - ``"csv://usage.log"``, ``"jsonl://usage.log"``: that format whatever the suffix
      (``jsonl:///var/log/usage.log`` for an absolute path);
    - ``"sqlite:///usage.db"`` (relative) or ``"sqlite:////var/usage.db"`` (absolute), with an
      optional ``?table=name``;
    - ``"logging://"`` or ``"logging://myapp.usage"``: a :class:`LoggingSink` on that logger;
    - ``"name://target"`` for any other name: the entry point ``name`` in the group
      ``tokenlog.sinks`` (a class or function), called with ``target``.

    A leading ``~`` in a path is the user's home directory. A scheme without its ``//`` (``"csv:usage.csv"``)
    raises ``ValueError``, as does a scheme that is neither built in nor installed.

    >>> resolve_sink("sqlite:///usage.db")
    SqliteSink('.../usage.db', table='usage')
    """
    if isinstance(spec, os.PathLike):
        return _from_path(os.fspath(spec))
    if isinstance(spec, str):
        match = _SCHEME.match(spec)
        if match is None:
            _refuse_scheme_without_slashes(spec)
            return _from_path(spec)
        scheme, target = match[1].lower(), match[2]
        factory = _BUILT_IN.get(scheme)
        return factory(target) if factory is not None else _from_entry_point(scheme, target, spec)
    if callable(getattr(spec, "write", None)):
        return spec
    raise TypeError(
        f"{spec!r} is not a sink: pass an object with write(record), a file path, or a 'scheme://target' string"
    )


def _from_path(path: str) -> Sink:
    if not path:
        raise ValueError("an empty string is not a sink: give a file path such as 'usage.csv'")
    path = os.path.expanduser(path)
    otherwise = f", or say the format: 'csv://{path}', 'jsonl://{path}'"
    return _BY_FORMAT[file_format(path, "the sink", otherwise)](path)


def _refuse_scheme_without_slashes(spec: str) -> None:
    match = _SCHEME_WITHOUT_SLASHES.match(spec)
    if match is None:
        return
    scheme, rest = match[1].lower(), match[2]
    if scheme in _BUILT_IN or entry_points(group=ENTRY_POINT_GROUP, name=scheme):
        fixed = f"sqlite:///{rest}" if scheme == "sqlite" else f"{scheme}://{rest}"
        raise ValueError(f"the sink {spec!r} looks like a {scheme} sink missing the '//' after the scheme: {fixed!r}")


def _from_entry_point(name: str, target: str, spec: str) -> Sink:
    found = entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        installed = sorted({point.name for point in entry_points(group=ENTRY_POINT_GROUP)})
        raise ValueError(
            f"{spec!r}: no sink is called {name!r}. Built in: {', '.join(sorted(_BUILT_IN))}; "
            f"installed plugins (entry points in the group {ENTRY_POINT_GROUP!r}): {', '.join(installed) or 'none'}"
        )
    point = next(iter(found))
    sink = point.load()(target)
    if not callable(getattr(sink, "write", None)):
        raise TypeError(f"the sink plugin {name!r} ({point.value}) made {sink!r}, which has no write(record) method")
    return sink  # type: ignore[no-any-return]
