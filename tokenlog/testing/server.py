"""A local HTTP server that answers like the Mistral API (and the OpenAI API), for tests and offline demos.

The server runs on 127.0.0.1 in a background thread, needs only the standard library, and is
deterministic, so a test can compute the exact token counts it must see:

- :func:`count_tokens` is the server's tokenizer: the number of whitespace-separated words.
- The reply to every completion is :func:`reply_text` of the last user message (of the prompt for
  FIM and legacy completions): ``"echo:"`` followed by that text's first eight words.
- ``prompt_tokens`` is :func:`count_tokens` of every text the request gives the model, joined with
  spaces: all message contents (the text parts of list contents) for chat and agents, prompt and
  suffix for FIM, ``instructions`` and ``input`` for responses and conversations.
  ``completion_tokens`` is the number of words of the reply. Embeddings count the sum of
  :func:`count_tokens` over the inputs, with ``completion_tokens`` 0.

Endpoints (all ``POST`` with a JSON body): ``/v1/chat/completions``, ``/v1/fim/completions``,
``/v1/agents/completions``, ``/v1/embeddings``, ``/v1/completions``, ``/v1/responses`` and
``/v1/conversations`` (with ``/v1/conversations/{id}`` and ``/v1/conversations/{id}/restart``, which
answer like a new conversation). Every one of them also streams when the body says ``"stream": true``.
Any other path answers 404 and a body that is not a JSON object answers 400, both with a JSON
error shaped like Mistral's.

Run it on its own, to develop offline, with ``tokenlog serve`` (or ``python -m tokenlog.testing.server``):
it prints its URL and serves until Ctrl-C (both run :func:`serve`).

Streams are Server-Sent Events sent with chunked transfer encoding on a keep-alive connection.
Chat-like streams put usage on the chunk that finishes the reply, as Mistral does, unless the
request asks for ``stream_options: {"include_usage": true}``: then usage comes on an extra chunk
with no choices, as OpenAI does. :attr:`MistralCompatibleServer.cut_stream_after` ends a stream
without its terminating chunk, which the SDKs' HTTP library reports as an incomplete body
(``RemoteProtocolError``; openai wraps it in ``APIConnectionError``).

>>> from mistralai.client import Mistral                      # doctest: +SKIP
>>> with MistralCompatibleServer() as server:                  # doctest: +SKIP
...     client = Mistral(api_key="test", server_url=server.url)
...     answer = client.chat.complete(model="m", messages=[{"role": "user", "content": "hi there"}])
...     answer.choices[0].message.content, answer.usage.prompt_tokens
('echo: hi there', 2)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

__all__ = [
    "AGENT_MODEL",
    "EMBEDDING",
    "REPLY_WORDS",
    "MistralCompatibleServer",
    "count_tokens",
    "reply_text",
    "serve",
]

REPLY_WORDS = 8
"""How many words of the last user message the reply echoes."""

AGENT_MODEL = "mistral-agent"
"""The ``model`` of a response when the request names none (agents completions, agent conversations)."""

EMBEDDING: tuple[float, ...] = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)
"""The vector returned for every embeddings input; exact in float32, so base64 answers decode to it."""

JSON = dict[str, Any]
_UsageMode = Literal["present", "omit", "null"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    422: "invalid_request_error",
    429: "rate_limited",
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


def count_tokens(text: str) -> int:
    """The server's token count of ``text``: its whitespace-separated words, at least 1 unless it is empty.

    >>> count_tokens("the quick  brown fox"), count_tokens(" "), count_tokens("")
    (4, 1, 0)
    """
    if not text:
        return 0
    return max(len(text.split()), 1)


def reply_text(prompt: str) -> str:
    """The server's answer to ``prompt``: ``"echo:"`` then the first :data:`REPLY_WORDS` words of it.

    >>> reply_text("one two three")
    'echo: one two three'
    >>> reply_text("")
    'echo:'
    """
    return " ".join(["echo:", *prompt.split()[:REPLY_WORDS]])


_NO_REPLY = object()
"""No :meth:`MistralCompatibleServer.respond_next` body is waiting."""


class MistralCompatibleServer:
    """A Mistral- and OpenAI-compatible server on 127.0.0.1, serving from a background thread.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. The fault settings
    (:meth:`fail_next`, :attr:`omit_usage`, :attr:`null_usage`, :attr:`cut_stream_after`) hold
    until :meth:`reset`; each request reads them once, when it arrives. :meth:`respond_next` answers
    the next requests with JSON bodies of your choosing (a documented response, replayed).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Configure the address; ``port=0`` lets the system pick a free port when :meth:`start` binds."""
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._requests_seen = 0
        self._ids = 0
        self._fail_status = 0
        self._fail_count = 0
        self._fail_retry_after: float | None = None
        self._replies: list[object] = []
        self.omit_usage = False
        """When true, responses and streams carry no ``usage`` key at all (wins over :attr:`null_usage`)."""
        self.null_usage = False
        """When true, responses carry ``"usage": null`` (streams: on the chunk that would hold it)."""
        self.cut_stream_after: int | None = None
        """When set, a stream sends this many events, then closes the connection mid-body (no [DONE])."""
        self.latency = 0.0
        """Seconds each request waits before it is answered: calls stay in flight that long."""
        self._in_flight = 0
        self._peak_in_flight = 0

    @property
    def url(self) -> str:
        """The base URL, ``http://127.0.0.1:PORT`` without ``/v1``; only while the server runs."""
        if self._httpd is None:
            raise RuntimeError("the server is not running; call start() first")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests_seen(self) -> int:
        """How many HTTP requests the server has handled, failed ones and 404s included."""
        with self._lock:
            return self._requests_seen

    @property
    def peak_in_flight(self) -> int:
        """The most requests the server was handling at once since it started (or since :meth:`reset`)."""
        with self._lock:
            return self._peak_in_flight

    def start(self) -> MistralCompatibleServer:
        """Bind the port and serve from a daemon thread; returns the server itself."""
        if self._httpd is not None:
            raise RuntimeError("the server is already running")
        httpd = _HTTPServer((self._host, self._port), self)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="mistral-compatible-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every open connection and free the port; does nothing if not running."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        # Keep-alive connections would otherwise leave handler threads blocked on a read.
        httpd.close_connections()
        httpd.server_close()
        thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> MistralCompatibleServer:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def fail_next(self, status: int, count: int = 1, *, retry_after: float | None = None) -> None:
        """Answer the next ``count`` requests with HTTP ``status`` and a Mistral-style JSON error body.

        ``retry_after`` (seconds) adds a ``Retry-After`` header to those answers.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {status}")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        with self._lock:
            self._fail_status = status
            self._fail_count = count
            self._fail_retry_after = retry_after

    def respond_next(self, *bodies: object) -> None:
        """Answer the next POST requests, one each, with these JSON bodies (status 200), whatever their path.

        For replaying a response as an API documents it (a conversation with connectors, a transcription,
        an OCR result) through a real SDK. A pending :meth:`fail_next` answers first.
        """
        encoded = [json.loads(json.dumps(body)) for body in bodies]  # refuse what JSON cannot hold, now
        with self._lock:
            self._replies.extend(encoded)

    def _next_reply(self) -> object:
        with self._lock:
            return self._replies.pop(0) if self._replies else _NO_REPLY

    def reset(self) -> None:
        """Clear every fault and reply: pending failures and :meth:`respond_next` bodies, :attr:`omit_usage`,
        :attr:`null_usage` and :attr:`cut_stream_after`."""
        with self._lock:
            self._fail_status = 0
            self._fail_count = 0
            self._fail_retry_after = None
            self._replies.clear()
            self._peak_in_flight = self._in_flight
        self.omit_usage = False
        self.null_usage = False
        self.cut_stream_after = None
        self.latency = 0.0

    def _admit(self) -> tuple[int, float | None] | None:
        """Count a request; the (status, retry_after) it must fail with, if a failure is pending."""
        with self._lock:
            self._requests_seen += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            if self._fail_count > 0:
                self._fail_count -= 1
                return self._fail_status, self._fail_retry_after
        return None

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}{self._ids:08x}"

    def _usage_mode(self) -> _UsageMode:
        if self.omit_usage:
            return "omit"
        if self.null_usage:
            return "null"
        return "present"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The default backlog of 5 drops SYNs under a burst of parallel clients, which then stall ~1 s to retry.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: MistralCompatibleServer) -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket | tuple[bytes, socket.socket]) -> None:
        if isinstance(request, socket.socket):
            with self._connections_lock:
                self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        # A client that hangs up mid-answer is normal in tests; anything else is a server bug worth printing.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one send (the buffer is flushed after each answer, and after each stream event),
    # and TCP_NODELAY: otherwise Nagle holds the second send ~40 ms for the client's delayed ACK, every request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        try:
            raw: bytes | None = self._read_body()
        except ValueError:
            raw = None
        app = self.server.app
        failure = app._admit()
        try:
            if app.latency > 0:
                time.sleep(app.latency)
            self._answer(app, method, raw, failure)
        finally:
            with app._lock:
                app._in_flight -= 1

    def _answer(
        self, app: MistralCompatibleServer, method: str, raw: bytes | None, failure: tuple[int, float | None] | None
    ) -> None:
        if raw is None:
            # The rest of the connection cannot be parsed once the body's framing is wrong.
            self.close_connection = True
            self._send_error(400, "Malformed request body framing")
            return
        if failure is not None:
            status, retry_after = failure
            self._send_error(status, _error_message(status), retry_after=retry_after)
            return
        reply = app._next_reply() if method == "POST" else _NO_REPLY
        if reply is not _NO_REPLY:
            self._send_json(200, reply)  # type: ignore[arg-type]
            return
        route = _route_for(urlsplit(self.path).path.rstrip("/"))
        if route is None or method != "POST":
            self._send_error(404, f"Not found: {method} {self.path}")
            return
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            self._send_error(400, "Invalid JSON body")
            return
        if not isinstance(body, dict):
            self._send_error(400, "The JSON body must be an object")
            return
        context = _Context(app)
        if body.get("stream") is True and route.stream is not None:
            self._send_stream(route.stream(body, context), done=route.done_sentinel, cut=app.cut_stream_after)
        else:
            self._send_json(200, route.complete(body, context))

    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is not None:
            size = int(length)
            if size < 0:
                raise ValueError("negative Content-Length")
            return self.rfile.read(size)
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return b""

    def _send_json(self, status: int, payload: JSON, headers: Iterable[tuple[str, str]] = ()) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, status: int, message: str, *, retry_after: float | None = None) -> None:
        payload = {
            "object": "error",
            "message": message,
            "type": _ERROR_TYPES.get(status, "api_error"),
            "param": None,
            "code": str(status),
        }
        headers = [] if retry_after is None else [("Retry-After", format(retry_after, "g"))]
        self._send_json(status, payload, headers)

    def _send_stream(self, events: list[bytes], *, done: bool, cut: int | None) -> None:
        # HTTP/1.0 clients cannot read chunked bodies: they get the stream delimited by the connection close.
        chunked = self.request_version != "HTTP/1.0"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if done and cut is None:
            events = [*events, b"data: [DONE]\n\n"]
        try:
            for event in events if cut is None else events[: max(cut, 0)]:
                self.wfile.write(b"%X\r\n%s\r\n" % (len(event), event) if chunked else event)
                self.wfile.flush()
            if cut is not None:
                self._abort()
            elif chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def _abort(self) -> None:
        """Close the connection mid-body, so the client sees a stream that never ends properly."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


class _Context:
    """What one request needs from the server: fresh ids, the clock and the usage mode, read once."""

    def __init__(self, app: MistralCompatibleServer) -> None:
        self._app = app
        self.usage_mode = app._usage_mode()
        self.created = int(time.time())

    def new_id(self, prefix: str) -> str:
        return self._app._next_id(prefix)

    def put_usage(self, payload: JSON, usage: JSON) -> JSON:
        """``payload`` with ``usage`` set, nulled or left out according to the usage mode."""
        if self.usage_mode == "present":
            payload["usage"] = usage
        elif self.usage_mode == "null":
            payload["usage"] = None
        return payload


class _Route:
    def __init__(
        self,
        complete: Callable[[JSON, _Context], JSON],
        stream: Callable[[JSON, _Context], list[bytes]] | None,
        *,
        done_sentinel: bool = True,
    ) -> None:
        self.complete = complete
        self.stream = stream
        self.done_sentinel = done_sentinel


# --- reading requests -------------------------------------------------------------------------------


def _text(content: Any) -> str:
    """The text of a message content: a string, or the ``text`` of the parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text") for part in content if isinstance(part, dict)]
        return " ".join(part for part in parts if isinstance(part, str))
    return ""


def _messages(items: Any) -> list[JSON]:
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if isinstance(items, list):
        return [item for item in items if isinstance(item, dict)]
    return []


def _joined(texts: Iterable[str]) -> str:
    return " ".join(text for text in texts if text)


def _conversation_texts(body: JSON, items_key: str) -> tuple[str, str]:
    """(everything the model reads, the last user message) of a messages-like request."""
    messages = _messages(body.get(items_key))
    instructions = body.get("instructions")
    prompt = _joined(
        [instructions if isinstance(instructions, str) else "", *(_text(m.get("content")) for m in messages)]
    )
    users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
    return prompt, users[-1] if users else ""


def _prompt_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _joined(item for item in value if isinstance(item, str))
    return ""


def _model(body: JSON) -> str:
    model = body.get("model")
    return model if isinstance(model, str) and model else AGENT_MODEL


def _wants_usage_chunk(body: JSON) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _usage(prompt: int, completion: int) -> JSON:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _pieces(reply: str) -> list[str]:
    """The reply cut into streamed pieces: one word each, with its trailing space except the last."""
    words = reply.split(" ")
    return [word + " " for word in words[:-1]] + words[-1:]


def _sse(payload: JSON, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload)}\n\n".encode()


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


# --- chat, agents, FIM --------------------------------------------------------------------------------


def _chat_like(body: JSON) -> tuple[str, int]:
    """(reply, prompt_tokens) of a chat, agents or FIM request."""
    if "messages" in body:
        prompt, last_user = _conversation_texts(body, "messages")
        return reply_text(last_user), count_tokens(prompt)
    prompt = _prompt_text(body.get("prompt"))
    suffix = body.get("suffix")
    return reply_text(prompt), count_tokens(_joined([prompt, suffix if isinstance(suffix, str) else ""]))


def _head(body: JSON, context: _Context, kind: str) -> JSON:
    """The fields every completion and chunk starts with: a new id, its object kind, the time and the model."""
    return {"id": context.new_id("cmpl-"), "object": kind, "created": context.created, "model": _model(body)}


def _chat_complete(body: JSON, context: _Context) -> JSON:
    reply, prompt_tokens = _chat_like(body)
    payload: JSON = {
        **_head(body, context, "chat.completion"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply, "tool_calls": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
    }
    return context.put_usage(payload, _usage(prompt_tokens, count_tokens(reply)))


def _chat_stream(body: JSON, context: _Context) -> list[bytes]:
    reply, prompt_tokens = _chat_like(body)
    base: JSON = {
        **_head(body, context, "chat.completion.chunk"),
    }
    deltas: list[tuple[JSON, str | None]] = [({"role": "assistant", "content": ""}, None)]
    pieces = _pieces(reply)
    deltas += [({"content": piece}, "stop" if i == len(pieces) - 1 else None) for i, piece in enumerate(pieces)]
    chunks = [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
        for delta, finish in deltas
    ]
    return [
        _sse(chunk)
        for chunk in _place_stream_usage(chunks, base, body, context, _usage(prompt_tokens, count_tokens(reply)))
    ]


def _place_stream_usage(chunks: list[JSON], base: JSON, body: JSON, context: _Context, usage: JSON) -> list[JSON]:
    """Mistral puts usage on the finishing chunk; OpenAI's include_usage puts it on an extra, choice-less one."""
    if not _wants_usage_chunk(body):
        context.put_usage(chunks[-1], usage)
        return chunks
    if context.usage_mode == "omit":
        return chunks
    for chunk in chunks:
        chunk["usage"] = None
    return [*chunks, context.put_usage({**base, "choices": []}, usage)]


# --- legacy completions (OpenAI) --------------------------------------------------------------------


def _completion(body: JSON, context: _Context) -> JSON:
    prompt = _prompt_text(body.get("prompt"))
    reply = reply_text(prompt)
    payload: JSON = {
        **_head(body, context, "text_completion"),
        "choices": [{"index": 0, "text": reply, "finish_reason": "stop", "logprobs": None}],
    }
    return context.put_usage(payload, _usage(count_tokens(prompt), count_tokens(reply)))


def _completion_stream(body: JSON, context: _Context) -> list[bytes]:
    prompt = _prompt_text(body.get("prompt"))
    reply = reply_text(prompt)
    pieces = _pieces(reply)
    base: JSON = {
        **_head(body, context, "text_completion"),
    }
    chunks = [
        {
            **base,
            "choices": [
                {"index": 0, "text": piece, "finish_reason": "stop" if i == len(pieces) - 1 else None, "logprobs": None}
            ],
        }
        for i, piece in enumerate(pieces)
    ]
    usage = _usage(count_tokens(prompt), count_tokens(reply))
    return [_sse(chunk) for chunk in _place_stream_usage(chunks, base, body, context, usage)]


# --- embeddings -----------------------------------------------------------------------------------


def _embeddings(body: JSON, context: _Context) -> JSON:
    raw = body.get("input", body.get("inputs"))
    inputs = (
        [raw]
        if isinstance(raw, str)
        else [item for item in raw if isinstance(item, str)]
        if isinstance(raw, list)
        else []
    )
    vector: Any = list(EMBEDDING)
    if body.get("encoding_format") == "base64":
        vector = base64.b64encode(struct.pack(f"<{len(EMBEDDING)}f", *EMBEDDING)).decode()
    prompt_tokens = sum(count_tokens(text) for text in inputs)
    payload: JSON = {
        "id": context.new_id("embd-"),
        "object": "list",
        "model": _model(body),
        "data": [{"object": "embedding", "embedding": vector, "index": i} for i in range(len(inputs))],
    }
    return context.put_usage(
        payload, {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens}
    )


# --- responses (OpenAI) ---------------------------------------------------------------------------


def _response_object(body: JSON, context: _Context, response_id: str, *, done: bool) -> tuple[JSON, str]:
    prompt, last_user = _conversation_texts(body, "input")
    reply = reply_text(last_user)
    message: JSON = {
        "id": response_id.replace("resp_", "msg_"),
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": reply, "annotations": [], "logprobs": []}],
    }
    payload: JSON = {
        "id": response_id,
        "object": "response",
        "created_at": float(context.created),
        "status": "completed" if done else "in_progress",
        "model": _model(body),
        "output": [message] if done else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "metadata": {},
        "temperature": None,
        "top_p": None,
    }
    if not done:
        payload["usage"] = None
        return payload, reply
    prompt_tokens, output_tokens = count_tokens(prompt), count_tokens(reply)
    usage = {
        "input_tokens": prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt_tokens + output_tokens,
    }
    return context.put_usage(payload, usage), reply


def _response(body: JSON, context: _Context) -> JSON:
    return _response_object(body, context, context.new_id("resp_"), done=True)[0]


def _response_stream(body: JSON, context: _Context) -> list[bytes]:
    response_id = context.new_id("resp_")
    started, _ = _response_object(body, context, response_id, done=False)
    finished, reply = _response_object(body, context, response_id, done=True)
    item_id = response_id.replace("resp_", "msg_")
    events: list[JSON] = [{"type": "response.created", "response": started}]
    events += [
        {
            "type": "response.output_text.delta",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": piece,
            "logprobs": [],
        }
        for piece in _pieces(reply)
    ]
    events.append({"type": "response.completed", "response": finished})
    return [_sse({**event, "sequence_number": i}, event["type"]) for i, event in enumerate(events)]


# --- conversations (Mistral beta) -----------------------------------------------------------------


def _conversation_parts(body: JSON) -> tuple[str, str, JSON]:
    """(model, reply, usage) of a conversation start."""
    prompt, last_user = _conversation_texts(body, "inputs")
    reply = reply_text(last_user)
    return _model(body), reply, _usage(count_tokens(prompt), count_tokens(reply))


def _conversation(body: JSON, context: _Context) -> JSON:
    model, reply, usage = _conversation_parts(body)
    now = _now_iso()
    agent_id = body.get("agent_id")
    payload: JSON = {
        "object": "conversation.response",
        "conversation_id": context.new_id("conv_"),
        "outputs": [
            {
                "object": "entry",
                "type": "message.output",
                "id": context.new_id("msg_"),
                "role": "assistant",
                "content": reply,
                "model": model,
                "agent_id": agent_id if isinstance(agent_id, str) else None,
                "created_at": now,
                "completed_at": now,
            }
        ],
    }
    return context.put_usage(payload, usage)


def _conversation_stream(body: JSON, context: _Context) -> list[bytes]:
    model, reply, usage = _conversation_parts(body)
    now = _now_iso()
    message_id = context.new_id("msg_")
    agent_id = body.get("agent_id")
    events: list[JSON] = [
        {"type": "conversation.response.started", "conversation_id": context.new_id("conv_"), "created_at": now}
    ]
    events += [
        {
            "type": "message.output.delta",
            "id": message_id,
            "content": piece,
            "role": "assistant",
            "model": model,
            "agent_id": agent_id if isinstance(agent_id, str) else None,
            "output_index": 0,
            "content_index": 0,
            "created_at": now,
        }
        for piece in _pieces(reply)
    ]
    events.append(context.put_usage({"type": "conversation.response.done", "created_at": now}, usage))
    return [_sse(event, event["type"]) for event in events]


def _error_message(status: int) -> str:
    if status == 429:
        return "Requests rate limit exceeded"
    return f"Simulated error {status}"


def _route_for(path: str) -> _Route | None:
    """The route of a path; ``/v1/conversations/{id}`` (append) and ``.../{id}/restart`` answer like a start."""
    route = _ROUTES.get(path)
    if route is None and path.startswith("/v1/conversations/"):
        rest = path.removeprefix("/v1/conversations/").split("/")
        if len(rest) == 1 or (len(rest) == 2 and rest[1] == "restart"):
            return _ROUTES["/v1/conversations"]
    return route


_ROUTES: dict[str, _Route] = {
    "/v1/chat/completions": _Route(_chat_complete, _chat_stream),
    "/v1/agents/completions": _Route(_chat_complete, _chat_stream),
    "/v1/fim/completions": _Route(_chat_complete, _chat_stream),
    "/v1/completions": _Route(_completion, _completion_stream),
    "/v1/embeddings": _Route(_embeddings, None),
    "/v1/responses": _Route(_response, _response_stream, done_sentinel=False),
    "/v1/conversations": _Route(_conversation, _conversation_stream, done_sentinel=False),
}


def serve(host: str = "127.0.0.1", port: int = 0, *, out: TextIO | None = None) -> int:
    """Serve in the foreground until Ctrl-C (or SIGTERM); return how many requests were answered.

    Prints the URL first (``port=0``: a free port the system picks), then how to point an SDK at it,
    and on Ctrl-C one line saying it stopped. Raises :class:`OSError` if the address cannot be bound.

    >>> serve(port=8000)  # doctest: +SKIP
    Mistral-compatible server listening on http://127.0.0.1:8000
    """
    out = out or sys.stdout
    server = MistralCompatibleServer(host, port).start()
    restore = _stop_on_signals()
    try:
        print(f"Mistral-compatible server listening on {server.url}", file=out)
        print(
            f'Point an SDK at it: Mistral(api_key="any", server_url="{server.url}") or '
            f'OpenAI(api_key="any", base_url="{server.url}/v1"). Ctrl-C stops it.',
            file=out,
            flush=True,
        )
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    finally:
        server.stop()
        restore()
    requests = server.requests_seen
    print(f"stopped after {requests} request{'' if requests == 1 else 's'}", file=out, flush=True)
    return requests


def _stop_on_signals() -> Callable[[], None]:
    """Make SIGINT and SIGTERM raise KeyboardInterrupt (even if SIGINT was ignored, as in a background job).

    Returns what puts the old handlers back. Outside the main thread signals cannot be handled: nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    for number in old:
        signal.signal(number, signal.default_int_handler)

    def restore() -> None:
        for number, handler in old.items():
            signal.signal(number, handler)

    return restore


def _main(argv: list[str] | None = None) -> int:
    """``python -m tokenlog.testing.server [--host HOST] [--port PORT]``: :func:`serve`, with one-line errors."""
    parser = argparse.ArgumentParser(
        prog="python -m tokenlog.testing.server", description="Run the local Mistral-compatible server until Ctrl-C."
    )
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="the port (default: 0, a free one)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: expected 0 (a free port) to 65535")
    try:
        serve(args.host, args.port)
    except OSError as exc:
        print(f"{parser.prog}: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover - run in a subprocess by the tests
    sys.exit(_main())
