"""Helpers for testing code that uses tokenlog, without a network.

:mod:`tokenlog.testing.server` holds a Mistral-compatible HTTP server that listens on 127.0.0.1 and answers
chat, FIM, embeddings, agents, completions, responses and conversations requests with deterministic token counts.
Importing this package imports nothing beyond the standard library.
"""
