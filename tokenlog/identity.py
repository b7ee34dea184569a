"""Response identity: which responses were recorded already, so that each is recorded once.

A response can be seen by several layers (nested decorators, an instrumented SDK method inside a
decorated function, a session's ``record()``); the first to record it wins, the others find it here.
"""

from __future__ import annotations

import weakref

from .record import UsageRecord

__all__ = ["RecordedResponses", "recorded"]

Entry = tuple[object, "UsageRecord | None"]
"""(the object or a weak reference to it, its record if one was built)"""


class RecordedResponses:
    """The responses recorded lately, by identity.

    At least the last ``capacity`` responses are remembered (at most twice that): entries go to
    a current table; when it is full, it becomes the previous one and the one before is
    forgotten whole. An entry holds a weak reference to its object where the type allows one
    (an entry whose object died never matches again, even if its ``id`` is reused), else the
    object itself (a ``dict``'s usage), so that its ``id`` cannot be reused while remembered.
    An entry keeps the record only where the route gives it one (a session that keeps records holds
    it anyway): holding a record per call measured 0.3 us a call in allocations and deferred frees.
    A freed response's id is often reused by the next one: its entry, found dead, is replaced in the
    same lookup.

    No lock: ``dict.setdefault`` is atomic, so of two threads adding the same object at once
    exactly one wins. Measured: the locked OrderedDict this replaced was a quarter of the
    decorator's own time.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._current: dict[int, Entry] = {}
        self._previous: dict[int, Entry] = {}
        self._replies: dict[str, None] = {}
        self._earlier_replies: dict[str, None] = {}

    def remember(self, anchor: object, record: UsageRecord | None) -> Entry | None:
        """Remember ``anchor`` (with ``record``); ``None`` if it is new, else the entry it was remembered with."""
        key = id(anchor)
        entry = (weakref.ref(anchor) if type(anchor).__weakrefoffset__ else anchor, record)
        current = self._current
        prior = current.setdefault(key, entry)
        if prior is entry:
            older = self._previous.get(key)
            if older is None:  # the common case: a response not seen before
                if len(current) >= self._capacity:
                    self._previous, self._current = current, {}
                return None
            prior = older
        held = prior[0]
        if (held() if type(held) is weakref.ref else held) is anchor:
            current[key] = prior  # seen before: the earlier entry stays the one remembered
            return prior
        current[key] = entry  # a dead object's id, reused: this entry replaces its old one
        return None

    def remember_reply(self, request_id: str) -> None:
        """Remember that the reply with ``request_id`` was recorded from its HTTP response.

        Its JSON, parsed again by the user (``response.json()``) and recorded by hand, is then the
        same reply, not another call. Only HTTP replies are remembered by id: they are the ones whose
        JSON a program holds as a new object. The last ``capacity`` ids, at most twice that.
        """
        ids = self._replies
        ids[request_id] = None
        if len(ids) >= self._capacity:
            self._earlier_replies, self._replies = ids, {}

    def replied(self, request_id: str) -> bool:
        """True if the reply with ``request_id`` was recorded from its HTTP response lately."""
        return request_id in self._replies or request_id in self._earlier_replies

    def clear(self) -> None:
        """Forget every response (``tokenlog.testing.reset()``)."""
        self._current, self._previous = {}, {}
        self._replies, self._earlier_replies = {}, {}


recorded = RecordedResponses()
"""The one memory every route to a sink shares."""
