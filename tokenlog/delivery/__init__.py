"""Delivery: getting a record into its sinks whatever they do.

- :mod:`~tokenlog.delivery.guard`: one guard per sink (retry buffer, backoff, status, strict mode),
  and the sink capabilities chosen once when the guard is made;
- :mod:`~tokenlog.delivery.buffered`: :class:`BufferedSink`, batches written from a background thread;
- :mod:`~tokenlog.delivery.lifecycle`: ``flush()`` and the one exit handler, with the fallback file.
"""
