"""Objects that must start afresh in a forked child: open files, connections, locks, threads.

A child inherits its parent's file descriptors, lock states and buffered rows, but none of its
threads. Each such object registers here and gets ``_after_fork_in_child()`` called in the child.
A plain lock that another thread of the parent held at the fork would stay locked for ever in the
child (no thread is left to release it): locks made with :func:`fork_safe_lock` are freed there.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Protocol, cast

__all__ = ["fork_safe_lock", "fork_safe_rlock", "reset_after_fork"]


class _ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


class _Reinitialisable(Protocol):
    def _at_fork_reinit(self) -> None: ...


_registered: weakref.WeakSet[_ForkAware] = weakref.WeakSet()
_locks: weakref.WeakSet[object] = weakref.WeakSet()


def reset_after_fork(obj: _ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked while ``obj`` lives."""
    _registered.add(obj)


def fork_safe_lock() -> threading.Lock:
    """A ``threading.Lock`` that is free in a forked child, whichever thread held it at the fork."""
    lock = threading.Lock()
    _locks.add(lock)
    return lock


def fork_safe_rlock() -> threading.RLock:
    """A ``threading.RLock`` that is free in a forked child, whichever thread held it at the fork."""
    lock = threading.RLock()
    _locks.add(lock)
    return lock


def _reset_all() -> None:
    for lock in list(_locks):
        # What the standard library does for its own locks (logging, concurrent.futures): Python 3.9+.
        cast(_Reinitialisable, lock)._at_fork_reinit()
    for obj in list(_registered):
        obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all)
