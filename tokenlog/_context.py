"""The stack of open usage sessions, one per execution context (thread or asyncio task)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .session import UsageSession

open_sessions: ContextVar[tuple[UsageSession, ...]] = ContextVar("tokenlog_open_sessions", default=())
"""Outermost first. A tuple, so that a copied context can never change another's stack."""

patching = False
"""True while SDK methods are (to be) patched: only then do decorated calls tell them who is calling."""
