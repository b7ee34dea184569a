"""OpenTelemetrySink: token usage as OpenTelemetry GenAI metrics (and span attributes).

Follows the OpenTelemetry semantic conventions for generative AI clients: the histogram
``gen_ai.client.token.usage`` (unit ``{token}``, one measurement per token type) and the span
attributes ``gen_ai.usage.input_tokens`` / ``gen_ai.usage.output_tokens``. OpenTelemetry is
imported only when a sink is created: ``pip install 'tokenlog[otel]'``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from ..record import UsageRecord, has_units
from ._fields import latency

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["TOKEN_USAGE_BUCKETS", "OpenTelemetrySink"]

TOKEN_USAGE_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
"""The explicit bucket boundaries the GenAI semantic conventions advise for ``gen_ai.client.token.usage``."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_MISTRAL_MODELS = r"(open-)?(mistral|mixtral|codestral|ministral|pixtral|magistral|devstral|voxtral|mathstral)"
_OPENAI_MODELS = r"(gpt-|chatgpt-|o[1-9](-|$)|text-embedding-|davinci|babbage)"
_PROVIDERS = ((re.compile(_MISTRAL_MODELS), "mistral_ai"), (re.compile(_OPENAI_MODELS), "openai"))


def _provider(model: str) -> str | None:
    """The ``gen_ai.provider.name`` a model name reveals, else ``None`` (the attribute is then left out)."""
    lowered = model.lower()
    for pattern, provider in _PROVIDERS:
        if pattern.match(lowered):
            return provider
    return None


class OpenTelemetrySink:
    """Records each record's tokens on the histogram ``gen_ai.client.token.usage``.

    Two measurements per record: the prompt tokens with ``gen_ai.token.type="input"`` and the
    completion tokens with ``"output"``. Attributes, as the GenAI semantic conventions name them:

    - ``gen_ai.operation.name``: ``operation`` if given, else ``"embeddings"`` for a model whose
      name contains ``embed`` and ``"chat"`` otherwise (a record does not say which endpoint made it);
    - ``gen_ai.provider.name`` and its older name ``gen_ai.system``: ``provider`` if given, else
      ``"mistral_ai"`` or ``"openai"`` when the model name shows it, else left out;
    - ``gen_ai.request.model`` and ``gen_ai.response.model``: the record's model (left out when
      it is ``"unknown"``).

    The histogram advises the semantic conventions' bucket boundaries (:data:`TOKEN_USAGE_BUCKETS`).
    ``meter_provider`` defaults to the global one.

    Spans: without ``tracer_provider``, the span current where the record is written (if it is
    recording and started before the call was recorded) gets ``gen_ai.usage.input_tokens`` and
    ``gen_ai.usage.output_tokens``, added up when several calls happen inside one span. With a
    ``tracer_provider``, each record becomes a span of its own instead: a CLIENT span named
    ``"{operation} {model}"`` covering the call's latency, a child of the current span, with the
    same attributes plus ``gen_ai.response.id``.

    :meth:`flush` and :meth:`close` leave the providers alone: they belong to your
    OpenTelemetry setup, which exports on its own schedule and shuts down at exit.
    """

    def __init__(
        self,
        meter_provider: MeterProvider | None = None,
        tracer_provider: TracerProvider | None = None,
        *,
        provider: str | None = None,
        operation: str | None = None,
    ) -> None:
        try:
            from opentelemetry import metrics
        except ImportError as exc:  # pragma: no cover - the test extra installs it
            raise ImportError("OpenTelemetrySink needs the OpenTelemetry API: pip install 'tokenlog[otel]'") from exc
        from .._version import __version__

        meter = metrics.get_meter("tokenlog", __version__, meter_provider)
        self._histogram = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Measures number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_USAGE_BUCKETS,
        )
        self._tracer: Tracer | None = None
        if tracer_provider is not None:
            self._tracer = tracer_provider.get_tracer("tokenlog", __version__)
        self.provider = provider
        self.operation = operation

    def __repr__(self) -> str:
        return "OpenTelemetrySink()"

    def write(self, record: UsageRecord) -> None:
        """Record the input and output tokens; annotate or create a span."""
        attributes = self._attributes(record)
        self._histogram.record(record.prompt_tokens, {**attributes, "gen_ai.token.type": "input"})
        self._histogram.record(record.completion_tokens, {**attributes, "gen_ai.token.type": "output"})
        if self._tracer is not None:
            self._span_of_its_own(self._tracer, record, attributes)
        else:
            self._annotate_current_span(record)

    def flush(self) -> None:
        """Nothing to do: your meter and tracer providers export on their own schedule."""

    def close(self) -> None:
        """Nothing to do: the providers are yours to shut down."""

    def _attributes(self, record: UsageRecord) -> dict[str, str]:
        model = record.model
        operation = self.operation or ("embeddings" if "embed" in model.lower() else "chat")
        attributes = {"gen_ai.operation.name": operation}
        provider = self.provider or _provider(model)
        if provider is not None:
            attributes["gen_ai.provider.name"] = provider
            attributes["gen_ai.system"] = provider
        if model != "unknown":
            attributes["gen_ai.request.model"] = model
            attributes["gen_ai.response.model"] = model
        return attributes

    @staticmethod
    def _annotate_current_span(record: UsageRecord) -> None:
        from opentelemetry import trace

        span = trace.get_current_span()
        if not span.is_recording():
            return
        started = getattr(span, "start_time", None)
        if isinstance(started, int) and started > _nanoseconds(record):
            return  # a retry written later, inside a span that did not see the call
        so_far: Mapping[str, object] = getattr(span, "attributes", None) or {}
        _add(span, so_far, "gen_ai.usage.input_tokens", record.prompt_tokens)
        _add(span, so_far, "gen_ai.usage.output_tokens", record.completion_tokens)
        for key, value in _unit_attributes(record).items():
            if isinstance(value, str):
                span.set_attribute(key, value)
            else:
                _add(span, so_far, key, value)

    @staticmethod
    def _span_of_its_own(tracer: Tracer, record: UsageRecord, attributes: dict[str, str]) -> None:
        from opentelemetry.trace import SpanKind

        end = _nanoseconds(record)
        start = end - int((latency(record) or 0.0) * 1_000_000)
        span_attributes: dict[str, str | int | float] = {
            **attributes,
            "gen_ai.usage.input_tokens": record.prompt_tokens,
            "gen_ai.usage.output_tokens": record.completion_tokens,
            **_unit_attributes(record),
        }
        if record.request_id is not None:
            span_attributes["gen_ai.response.id"] = record.request_id
        name = f"{attributes['gen_ai.operation.name']} {attributes.get('gen_ai.request.model', '')}".rstrip()
        span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=span_attributes, start_time=start)
        span.end(end_time=end)


def _unit_attributes(record: UsageRecord) -> dict[str, int | float | str]:
    """A record's units as span attributes: the GenAI conventions' name where they have one, else ``tokenlog.*``."""
    if not has_units(record):
        return {}
    found: dict[str, int | float | str | None] = {
        "gen_ai.usage.cache_read.input_tokens": record.cached_tokens,  # part of gen_ai.usage.input_tokens
        "tokenlog.usage.reasoning_tokens": record.reasoning_tokens,
        "tokenlog.usage.audio_seconds": record.audio_seconds,
        "tokenlog.usage.connector_tokens": record.connector_tokens,
        "tokenlog.usage.pages": record.pages,
        "tokenlog.service_tier": record.service_tier,
    }
    for name, calls in (record.connector_calls or {}).items():
        found[f"tokenlog.usage.connector_calls.{name}"] = calls
    return {key: value for key, value in found.items() if value is not None}


def _add(span: Span, so_far: Mapping[str, object], key: str, amount: float) -> None:
    previous = so_far.get(key)
    span.set_attribute(key, amount + previous if isinstance(previous, (int, float)) else amount)


def _nanoseconds(record: UsageRecord) -> int:
    return (record.timestamp - _EPOCH) // _MICROSECOND * 1000
