"""``tokenlog demo``: the main job, offline, on a Mistral-compatible server inside this process.

The demo makes real :mod:`mistralai` SDK calls (``Mistral(server_url=...)``) through
:func:`~tokenlog.track_usage` and :func:`~tokenlog.usage_session`: a plain chat call, an async call,
a FIM call, an embeddings call, and a few worker processes that share the same CSV file. It writes
only to the file it is given (``tokenlog demo``: ``./tokenlog-demo.csv``, never the user's
``mistral_usage_log.csv`` or ``$TOKENLOG_FILE``) and returns the session it recorded in, so the
caller can print what it spent. Nothing leaves 127.0.0.1. :func:`run_live_demo` makes the same calls
to the real Mistral API instead, with your API key.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from pathlib import Path
from typing import Any

from .errors import counted
from .session import UsageSession, usage_session
from .track import track_usage

__all__ = ["QUESTIONS", "run_demo", "run_live_demo"]

QUESTIONS = (
    "What is the capital of France?",
    "Name three rivers that flow through Europe.",
    "Explain in one sentence what a token is.",
)
"""What the demo asks; the local server echoes the first words of each question back."""

CHAT_MODEL = "mistral-small-latest"
LARGE_MODEL = "mistral-large-latest"
CODE_MODEL = "codestral-latest"
EMBED_MODEL = "mistral-embed"
OFFLINE_KEY = "demo-key-no-network"


def _client(server_url: str | None, api_key: str) -> Any:
    from mistralai.client import Mistral

    if server_url is None:  # --live: the SDK's own default, api.mistral.ai
        return Mistral(api_key=api_key)
    return Mistral(api_key=api_key, server_url=server_url)


def _worker(server_url: str | None, api_key: str, log_file: str, calls: int) -> None:
    """One worker process: a few tracked calls into the same CSV file as everyone else."""
    import tokenlog

    tokenlog.configure(sinks=[log_file])

    with _client(server_url, api_key) as client:

        @track_usage
        def ask(question: str) -> Any:
            return client.chat.complete(model=CHAT_MODEL, messages=[{"role": "user", "content": question}])

        for i in range(calls):
            ask(QUESTIONS[i % len(QUESTIONS)])
    tokenlog.flush()


def run_demo(log_file: str | os.PathLike[str], *, processes: int = 3, calls_per_process: int = 4) -> UsageSession:
    """Run the demo against a local server; every row goes to ``log_file``. Returns the demo's session.

    The session counts the calls made in this process; the worker processes add
    ``processes * calls_per_process`` rows of their own to the same file.
    """
    from .testing.server import MistralCompatibleServer

    with MistralCompatibleServer() as server:
        return _make_calls(log_file, server.url, OFFLINE_KEY, processes, calls_per_process, tag="offline-demo")


def run_live_demo(
    log_file: str | os.PathLike[str], api_key: str, *, processes: int = 0, calls_per_process: int = 1
) -> UsageSession:
    """The same calls as :func:`run_demo`, made to the real Mistral API with ``api_key``: they cost a little."""
    return _make_calls(log_file, None, api_key, processes, calls_per_process, tag="live-demo")


def _make_calls(
    log_file: str | os.PathLike[str],
    server_url: str | None,
    api_key: str,
    processes: int,
    calls_per_process: int,
    *,
    tag: str,
) -> UsageSession:
    """The demo's calls: sync, async and streamed chat, FIM, embeddings and an undecorated call here, then
    chat calls from worker processes."""
    from .delivery.lifecycle import flush

    log_path = str(Path(log_file).resolve())
    with _client(server_url, api_key) as client:

        @track_usage
        def ask(question: str, model: str = CHAT_MODEL) -> Any:
            return client.chat.complete(model=model, messages=[{"role": "user", "content": question}])

        @track_usage
        async def ask_async(question: str) -> Any:
            return await client.chat.complete_async(model=LARGE_MODEL, messages=[{"role": "user", "content": question}])

        @track_usage
        def ask_streaming(question: str) -> Any:
            return client.chat.stream(model=CHAT_MODEL, messages=[{"role": "user", "content": question}])

        @track_usage
        def complete_code(prompt: str, suffix: str) -> Any:
            return client.fim.complete(model=CODE_MODEL, prompt=prompt, suffix=suffix)

        @track_usage
        def embed(texts: list[str]) -> Any:
            return client.embeddings.create(model=EMBED_MODEL, inputs=texts)

        async def ask_all_async() -> None:
            async with usage_session("demo-async"):
                await asyncio.gather(*(ask_async(question) for question in QUESTIONS))

        with usage_session("demo", sinks=[log_path], tags={"run": tag}) as session:
            for question in QUESTIONS:
                ask(question)
            asyncio.run(ask_all_async())
            with ask_streaming(QUESTIONS[0]) as events:  # one row, when the chunk with usage arrives
                for _event in events:
                    pass
            complete_code("def fibonacci(n):", "return result")
            embed(list(QUESTIONS))
            # A call nobody decorated: the session records it too (SDK instrumentation).
            client.chat.complete(model=LARGE_MODEL, messages=[{"role": "user", "content": QUESTIONS[2]}])

    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_worker, args=(server_url, api_key, log_path, calls_per_process))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    failed = [worker.exitcode for worker in workers if worker.exitcode != 0]
    if failed:
        raise RuntimeError(
            f"{counted(len(failed), 'demo worker process', 'demo worker processes')} failed with exit codes {failed}"
        )
    flush()
    return session
