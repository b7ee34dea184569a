"""Instrumentation: record the SDK calls that nobody decorated.

:func:`instrument` patches the methods of the installed SDKs that return usage (listed in
:data:`TARGETS`) with ``wrapt`` function wrappers; :func:`uninstrument` puts the original
functions back, exactly. SDK modules are never imported here: a post-import hook patches each one
when the program imports it (mistralai imports ``mistralai.client.chat`` only on first use of
``client.chat``), so instrumenting costs nothing for an SDK that is not used.

A patched method records only while it should: after a global :func:`instrument`, or inside a
``usage_session()`` (which instruments by default). Anywhere else it calls straight through.
Inside a ``@track_usage`` function the record is made in that function's name, with its tags and
sinks, and the decorator does not record the same response again.

An SDK that is not installed is skipped silently; an SDK whose layout changed (a class or method
that is not where we expect it) is skipped with a debug message on the ``tokenlog`` logger.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import wrapt

from . import config, route
from ._fork import fork_safe_rlock
from .calls import Call, Tracker, Wrapper, call_wrapper, current_call
from .scopes import current

__all__ = ["TARGETS", "Target", "instrument", "instrumented_methods", "is_instrumented", "uninstrument"]

log = logging.getLogger("tokenlog")


@dataclass(frozen=True)
class Target:
    """Methods of one SDK class to record: ``module.cls.method`` for each method."""

    sdk: str
    module: str
    cls: str
    methods: tuple[str, ...]
    only_if: str | None = None
    """A method the class must have (tells mistralai 0.x from the 1.x migration stub of the same name)."""
    kind: str = "sdk"
    """``sdk``: records what the method returns. ``http``: an HTTP client's method, whose response's JSON
    body is recorded if read and carrying usage. ``thread``: starts work in another thread, which then
    runs in a copy of the caller's context (its sessions and decorated call)."""


_COMPLETIONS = ("complete", "complete_async", "stream", "stream_async")
_CONVERSATIONS = tuple(
    f"{verb}{stream}{mode}"
    for verb in ("start", "append", "restart")
    for stream in ("", "_stream")
    for mode in ("", "_async")
)
_CLIENT_0X = ("chat", "chat_stream", "embeddings")

TARGETS: tuple[Target, ...] = (
    # mistralai 2.x and 3.x: from mistralai.client import Mistral
    Target("mistralai", "mistralai.client.chat", "Chat", _COMPLETIONS),
    Target("mistralai", "mistralai.client.fim", "Fim", _COMPLETIONS),
    Target("mistralai", "mistralai.client.agents", "Agents", _COMPLETIONS),
    Target("mistralai", "mistralai.client.embeddings", "Embeddings", ("create", "create_async")),
    Target("mistralai", "mistralai.client.conversations", "Conversations", _CONVERSATIONS),
    Target("mistralai", "mistralai.client.transcriptions", "Transcriptions", _COMPLETIONS),
    Target("mistralai", "mistralai.client.ocr", "Ocr", ("process", "process_async")),
    Target("mistralai", "mistralai.client.responses", "Responses", ("create", "create_async")),
    # mistralai 1.x: from mistralai import Mistral
    Target("mistralai", "mistralai.chat", "Chat", _COMPLETIONS),
    Target("mistralai", "mistralai.fim", "Fim", _COMPLETIONS),
    Target("mistralai", "mistralai.agents", "Agents", _COMPLETIONS),
    Target("mistralai", "mistralai.embeddings", "Embeddings", ("create", "create_async")),
    Target("mistralai", "mistralai.conversations", "Conversations", _CONVERSATIONS),
    Target("mistralai", "mistralai.transcriptions", "Transcriptions", _COMPLETIONS),
    Target("mistralai", "mistralai.ocr", "Ocr", ("process", "process_async")),
    # mistralai 0.x: MistralClient / MistralAsyncClient
    Target("mistralai", "mistralai.client", "MistralClient", _CLIENT_0X, "chat_stream"),
    Target("mistralai", "mistralai.async_client", "MistralAsyncClient", _CLIENT_0X, "chat_stream"),
    # openai 1.x and later
    # (parse: structured outputs; with_raw_response.create goes through create and is read from its body)
    Target("openai", "openai.resources.chat.completions", "Completions", ("create", "parse")),
    Target("openai", "openai.resources.chat.completions", "AsyncCompletions", ("create", "parse")),
    Target("openai", "openai.resources.beta.chat.completions", "Completions", ("parse",)),  # openai < 1.92
    Target("openai", "openai.resources.beta.chat.completions", "AsyncCompletions", ("parse",)),
    Target("openai", "openai.resources.completions", "Completions", ("create",)),
    Target("openai", "openai.resources.completions", "AsyncCompletions", ("create",)),
    Target("openai", "openai.resources.embeddings", "Embeddings", ("create",)),
    Target("openai", "openai.resources.embeddings", "AsyncEmbeddings", ("create",)),
    Target("openai", "openai.resources.responses", "Responses", ("create",)),
    Target("openai", "openai.resources.responses", "AsyncResponses", ("create",)),
    # Plain HTTP: requests.post(...) and httpx, sync and async (every request goes through send()). The SDKs'
    # own requests (httpx, inside a method above) are not recorded twice.
    Target("requests", "requests.sessions", "Session", ("send",), kind="http"),
    Target("httpx", "httpx._client", "Client", ("send",), kind="http"),
    Target("httpx", "httpx._client", "AsyncClient", ("send",), kind="http"),
    # Threads started inside a session or a decorated call count for it (TOKENLOG_FOLLOW_THREADS=0: they do not).
    Target("threading", "threading", "Thread", ("start",), kind="thread"),
    Target("concurrent.futures", "concurrent.futures.thread", "ThreadPoolExecutor", ("submit",), kind="thread"),
)
"""Every SDK method tokenlog can instrument, by the module that defines or re-exports its class."""


_lock = fork_safe_rlock()
_global = False  # instrument() was called and uninstrument() was not
_patching = False  # patches are wanted: modules get patched when imported (instrument() or a session)
_hooks_registered: set[str] = set()
_patched: dict[tuple[type, str], tuple[Any, str]] = {}
"""(class, method name) -> (the attribute as it was in the class ``__dict__``, the label we record as)."""


def instrument() -> None:
    """Record every call of the SDK methods in :data:`TARGETS`, everywhere, until :func:`uninstrument`.

    Calling it twice is harmless. Modules imported later are patched when they are imported.

    >>> import tokenlog
    >>> tokenlog.instrument()
    >>> tokenlog.is_instrumented()
    True
    >>> tokenlog.uninstrument()
    >>> tokenlog.is_instrumented()
    False
    """
    global _global
    with _lock:
        _global = True
        ensure_patched()


def uninstrument() -> None:
    """Put every patched SDK method back as it was. Sessions opened later patch again."""
    global _global, _patching
    with _lock:
        _global = _patching = False
        for (owner, name), (original, label) in list(_patched.items()):
            current = vars(owner).get(name)
            if isinstance(current, wrapt.FunctionWrapper) and current.__wrapped__ is original:
                setattr(owner, name, original)
            else:  # someone patched over us: taking ours out would take theirs out too
                log.debug("tokenlog: %s was patched again by someone else; left in place", label)
            del _patched[(owner, name)]


def patching() -> bool:
    """True while the SDK, HTTP and thread methods are patched (or get patched when imported)."""
    return _patching


def is_instrumented() -> bool:
    """True between :func:`instrument` and :func:`uninstrument`."""
    return _global


def instrumented_methods() -> list[str]:
    """The SDK methods patched right now, as ``module.Class.method`` (sorted)."""
    with _lock:
        return sorted(f"{owner.__module__}.{owner.__qualname__}.{name}" for owner, name in _patched)


def ensure_patched() -> None:
    """Patch what is imported now, and have every other target patched when it is imported."""
    global _patching
    if _patching:
        return  # the post-import hooks patch whatever is imported from now on
    with _lock:
        _patching = True
        for module_name in {target.module for target in TARGETS}:
            if module_name in _hooks_registered:
                module = sys.modules.get(module_name)
                if module is not None:
                    _patch_module(module)
                continue
            _hooks_registered.add(module_name)
            # Fires at once if the module is imported already.
            wrapt.register_post_import_hook(_on_import, module_name)


def _on_import(module: ModuleType) -> None:
    with _lock:
        if _patching:
            _patch_module(module)


def _patch_module(module: ModuleType) -> None:
    for target in TARGETS:
        if target.module != module.__name__:
            continue
        owner = getattr(module, target.cls, None)
        if not isinstance(owner, type):
            log.debug("tokenlog: %s has no class %s; not instrumented", target.module, target.cls)
            continue
        if target.only_if is not None and target.only_if not in vars(owner):
            continue
        for name in target.methods:
            _patch(owner, name, target)


def _patch(owner: type, name: str, target: Target) -> None:
    if (owner, name) in _patched:
        return
    original = vars(owner).get(name)
    if original is None or not callable(original):
        log.debug("tokenlog: %s.%s has no method %s; not instrumented", target.module, target.cls, name)
        return
    label = f"{target.sdk}:{owner.__qualname__}.{name}"
    asynchronous = inspect.iscoroutinefunction(original) and not inspect.isasyncgenfunction(original)
    wrapper: Wrapper
    if target.kind == "thread":
        if os.environ.get("TOKENLOG_FOLLOW_THREADS", "").strip().lower() in ("0", "false", "no", "off"):
            return
        wrapper = _start_thread if name == "start" else _submit
    elif target.kind == "http":
        wrapper = call_wrapper(_HttpTracker(label).enter, asynchronous, Call.observe_http)
    else:
        wrapper = call_wrapper(_SdkTracker(label).enter, asynchronous)
    _patched[(owner, name)] = (original, label)
    setattr(owner, name, wrapt.FunctionWrapper(original, wrapper))


def _in_scope() -> bool:
    """A session is open or a decorated call is running here: work started in another thread counts for it."""
    return current_call.get() is not None or bool(current.get().sessions)


def _start_thread(wrapped: Callable[..., Any], thread: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``Thread.start``: inside a scope, the thread runs in a copy of this context (as ``session.bind`` would).

    A thread pool's worker is left alone: it outlives the scope and runs other work; each task submitted
    inside a scope carries its own copy instead (:func:`_submit`).
    """
    if _in_scope() and not _is_pool_worker(thread):
        thread.run = functools.partial(contextvars.copy_context().run, thread.run)
    return wrapped(*args, **kwargs)


def _submit(wrapped: Callable[..., Any], pool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``ThreadPoolExecutor.submit``: inside a scope, the task runs in a copy of this context."""
    if args and _in_scope():
        return wrapped(contextvars.copy_context().run, *args, **kwargs)
    return wrapped(*args, **kwargs)


def _is_pool_worker(thread: Any) -> bool:
    pool = sys.modules.get("concurrent.futures.thread")
    return pool is not None and getattr(thread, "_target", None) is getattr(pool, "_worker", None)


def _recording() -> bool:
    """SDK and HTTP calls record now: recording is on, and instrument() was called, or a session that
    instruments is open, or a decorated call is running."""
    return config.settings.enabled and (_global or current.get().instrument or current_call.get() is not None)


class _SdkTracker(Tracker):
    """The tracker of one patched SDK method: records only while it should, and inside a decorated
    call in that call's name (with its tags and sinks), so the decorator does not record it again."""

    def __init__(self, label: str) -> None:
        super().__init__(label, None, None, None)

    def enter(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Call | None:
        if not _recording():
            return None
        outer = current_call.get()
        call = Call(self, sdk=True) if outer is None else Call(outer.tracker, outer, sdk=True)
        limits = route.in_force(current.get())
        if limits:  # the request is about to leave: it holds its place in a budget of calls until it returns
            call.held = route.admit(limits, _model_argument(args, kwargs), True)
        return call


class _HttpTracker(_SdkTracker):
    """The tracker of a patched HTTP client method: as an SDK method's, but a request that an SDK method
    makes is left to that method, and a response without usage (most HTTP) is not counted or warned about.
    Budgets are enforced on requests to a model API's endpoints (a POST to ``.../chat/completions``,
    ``.../embeddings``, ...) only: any other request is not a model call."""

    def enter(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Call | None:
        if not _recording():
            return None
        outer = current_call.get()
        if outer is None:
            call = Call(self)
        elif outer.sdk:
            return None
        else:
            call = Call(outer.tracker, outer)
        limits = route.in_force(current.get())
        if limits and args and _is_model_request(args[0]):
            call.held = route.admit(limits, _request_model(args[0]), True)
        return call


def _model_argument(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> object:
    """The model an SDK call names: ``model=``, or a first positional string (mistralai 0.x ``chat(model, ...)``)."""
    model = kwargs.get("model")
    if model is None and args and type(args[0]) is str:
        model = args[0]
    return model


_MODEL_ENDPOINT = re.compile(
    r"/(?:chat/completions|fim/completions|agents/completions|completions|embeddings|ocr|audio/transcriptions"
    r"|responses|conversations(?:/[^/]+(?:/restart)?)?)/?$"
)
"""The paths of the model APIs' endpoints that bill a call (Mistral's and OpenAI-compatible ones)."""


def _is_model_request(request: Any) -> bool:
    """A ``requests`` ``PreparedRequest`` or an ``httpx.Request`` that POSTs to a model endpoint."""
    if str(getattr(request, "method", "")).upper() != "POST":
        return False
    return _MODEL_ENDPOINT.search(urlsplit(str(getattr(request, "url", ""))).path) is not None


def _request_model(request: Any) -> object:
    """The ``model`` of a request's JSON body, if it is loaded and says one (else ``None``: not known)."""
    try:
        body = request.body if hasattr(request, "body") else request.content  # requests | httpx
        payload = json.loads(body) if body else None
    except Exception:  # a streamed (unread) httpx body, a file upload, not JSON
        return None
    return payload.get("model") if isinstance(payload, dict) else None
