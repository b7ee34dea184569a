"""Objects that must start afresh in a forked child: open files, connections, locks, threads.

A child inherits its parent's file descriptors, lock states and buffered rows, but none of its
threads. Each such object registers here and gets ``_after_fork_in_child()`` called in the child.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["reset_after_fork"]


class _ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


_registered: weakref.WeakSet[_ForkAware] = weakref.WeakSet()


def reset_after_fork(obj: _ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked while ``obj`` lives."""
    _registered.add(obj)


def _reset_all() -> None:
    for obj in list(_registered):
        obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all)
