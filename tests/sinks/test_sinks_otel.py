"""OpenTelemetrySink with the real OpenTelemetry SDK: in-memory metric reader and span exporter."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tokenlog
from tokenlog import OpenTelemetrySink, UsageRecord, track_usage
from tokenlog.sinks.otel import TOKEN_USAGE_BUCKETS


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(reader: InMemoryMetricReader) -> MeterProvider:
    return MeterProvider(metric_readers=[reader])


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def token_usage(reader: InMemoryMetricReader) -> tuple[str, list[HistogramDataPoint]]:
    data = reader.get_metrics_data()
    assert data is not None
    (metric,) = [
        metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "gen_ai.client.token.usage"
    ]
    return metric.unit or "", list(metric.data.data_points)  # type: ignore[arg-type]


def points_by_attributes(points: list[HistogramDataPoint]) -> dict[tuple[tuple[str, object], ...], tuple[int, float]]:
    return {tuple(sorted(p.attributes.items())): (p.count, p.sum) for p in points}  # type: ignore[union-attr]


@track_usage
def ask(prompt: int = 10, completion: int = 5, model: str = "mistral-small-latest") -> dict[str, object]:
    return {"id": "cmpl-7", "model": model, "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


def test_each_record_is_two_histogram_measurements_with_the_genai_attributes(
    reader: InMemoryMetricReader, meter_provider: MeterProvider
) -> None:
    tokenlog.configure(sinks=[OpenTelemetrySink(meter_provider)])
    ask(10, 5)
    ask(20, 7)
    ask(3, 0, model="mistral-embed")
    unit, points = token_usage(reader)
    assert unit == "{token}"
    chat = (
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "mistral_ai"),
        ("gen_ai.request.model", "mistral-small-latest"),
        ("gen_ai.response.model", "mistral-small-latest"),
        ("gen_ai.system", "mistral_ai"),
    )
    embeddings = (
        ("gen_ai.operation.name", "embeddings"),
        ("gen_ai.provider.name", "mistral_ai"),
        ("gen_ai.request.model", "mistral-embed"),
        ("gen_ai.response.model", "mistral-embed"),
        ("gen_ai.system", "mistral_ai"),
    )
    assert points_by_attributes(points) == {
        (*chat, ("gen_ai.token.type", "input")): (2, 30),
        (*chat, ("gen_ai.token.type", "output")): (2, 12),
        (*embeddings, ("gen_ai.token.type", "input")): (1, 3),
        (*embeddings, ("gen_ai.token.type", "output")): (1, 0),
    }


def test_the_histogram_uses_the_bucket_boundaries_the_semantic_conventions_advise(
    reader: InMemoryMetricReader, meter_provider: MeterProvider
) -> None:
    OpenTelemetrySink(meter_provider).write(UsageRecord(datetime.now(timezone.utc), "mistral-large", 100, 5000, 5100))
    _, points = token_usage(reader)
    assert {tuple(p.explicit_bounds) for p in points} == {tuple(float(b) for b in TOKEN_USAGE_BUCKETS)}
    by_type = {p.attributes["gen_ai.token.type"]: list(p.bucket_counts) for p in points}  # type: ignore[index]
    assert by_type["input"].index(1) == 4  # buckets (-inf,1] (1,4] (4,16] (16,64] (64,256]: 100 is in the 5th
    assert by_type["output"].index(1) == 7  # 5000 is in (4096, 16384], the 8th


def test_provider_is_left_out_when_the_model_does_not_show_it_and_can_be_given(
    reader: InMemoryMetricReader, meter_provider: MeterProvider
) -> None:
    now = datetime.now(timezone.utc)
    OpenTelemetrySink(meter_provider).write(UsageRecord(now, "my-finetune", 1, 1, 2))
    OpenTelemetrySink(meter_provider, provider="mistral_ai", operation="text_completion").write(
        UsageRecord(now, "unknown", 1, 1, 2)
    )
    attributes = [dict(p.attributes or {}) for p in token_usage(reader)[1] if p.attributes]
    finetune = next(a for a in attributes if a.get("gen_ai.request.model") == "my-finetune")
    assert "gen_ai.provider.name" not in finetune
    assert "gen_ai.system" not in finetune
    given = next(a for a in attributes if a["gen_ai.operation.name"] == "text_completion")
    assert given["gen_ai.provider.name"] == "mistral_ai"
    assert "gen_ai.request.model" not in given  # "unknown" is not a model name


def test_openai_models_are_marked_as_openai(reader: InMemoryMetricReader, meter_provider: MeterProvider) -> None:
    OpenTelemetrySink(meter_provider).write(UsageRecord(datetime.now(timezone.utc), "gpt-4o-mini", 1, 1, 2))
    assert {p.attributes["gen_ai.provider.name"] for p in token_usage(reader)[1]} == {"openai"}  # type: ignore[index]


def test_the_current_span_gets_the_usage_attributes_summed_over_its_calls(
    meter_provider: MeterProvider, tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    tokenlog.configure(sinks=[OpenTelemetrySink(meter_provider)])
    tracer = tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle request"):
        ask(10, 5)
        ask(1, 2)
    with tracer.start_as_current_span("another request"):
        ask(4, 4)
    ask(100, 100)  # no span: nothing to annotate, the metric still counts it
    spans = {span.name: span.attributes for span in exporter.get_finished_spans()}
    assert spans["handle request"]["gen_ai.usage.input_tokens"] == 11  # type: ignore[index]
    assert spans["handle request"]["gen_ai.usage.output_tokens"] == 7  # type: ignore[index]
    assert spans["another request"]["gen_ai.usage.input_tokens"] == 4  # type: ignore[index]


def test_a_record_made_before_the_current_span_started_does_not_annotate_it(
    meter_provider: MeterProvider, tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    earlier = UsageRecord(datetime.now(timezone.utc) - timedelta(seconds=5), "mistral-small", 1, 1, 2)
    with tracer_provider.get_tracer("app").start_as_current_span("later"):
        OpenTelemetrySink(meter_provider).write(earlier)  # e.g. a retried row
    (span,) = exporter.get_finished_spans()
    assert "gen_ai.usage.input_tokens" not in (span.attributes or {})


def test_with_a_tracer_provider_each_record_becomes_a_client_span_covering_the_call(
    meter_provider: MeterProvider, tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    sink = OpenTelemetrySink(meter_provider, tracer_provider)
    when = datetime(2023, 10, 27, 10, 30, 0, 500000, tzinfo=timezone.utc)
    with tracer_provider.get_tracer("app").start_as_current_span("handler") as parent:
        sink.write(UsageRecord(when, "mistral-small", 12, 5, 17, latency_ms=250.0, request_id="cmpl-1"))
    spans = {span.name: span for span in exporter.get_finished_spans()}
    call = spans["chat mistral-small"]
    assert call.kind == trace.SpanKind.CLIENT
    assert call.parent is not None
    assert call.parent.span_id == parent.get_span_context().span_id
    assert call.end_time == 1698402600_500000_000
    assert call.start_time == 1698402600_250000_000
    assert dict(call.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "mistral_ai",
        "gen_ai.system": "mistral_ai",
        "gen_ai.request.model": "mistral-small",
        "gen_ai.response.model": "mistral-small",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.response.id": "cmpl-1",
    }
    assert "gen_ai.usage.input_tokens" not in (spans["handler"].attributes or {})


def test_units_become_span_attributes_named_as_the_genai_conventions_name_them(
    meter_provider: MeterProvider, tracer_provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    sink = OpenTelemetrySink(meter_provider, tracer_provider)
    when = datetime(2023, 10, 27, 10, 30, 0, tzinfo=timezone.utc)
    conversation = UsageRecord(
        when, "mistral-medium", 7300, 55, 7355, connector_tokens=7112, connector_calls={"web_search": 1}
    )
    cached = UsageRecord(when, "mistral-small", 1013, 30, 1043, cached_tokens=1008, service_tier="standard")
    with tracer_provider.get_tracer("app").start_as_current_span("handler"):
        sink.write(conversation)
        sink.write(cached)
    spans = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}
    assert spans["chat mistral-small"]["gen_ai.usage.cache_read.input_tokens"] == 1008
    assert spans["chat mistral-small"]["tokenlog.service_tier"] == "standard"
    assert spans["chat mistral-medium"]["tokenlog.usage.connector_tokens"] == 7112
    assert spans["chat mistral-medium"]["tokenlog.usage.connector_calls.web_search"] == 1
    assert "gen_ai.usage.cache_read.input_tokens" not in spans["chat mistral-medium"]  # it did not say
    # the enclosing span (annotated when no tracer provider is given) sums them as it sums tokens
    tokenlog.configure(sinks=[OpenTelemetrySink(meter_provider)])
    with tracer_provider.get_tracer("app").start_as_current_span("request"):
        for _ in range(2):
            tokenlog.track_usage(
                lambda: {
                    "model": "m",
                    "usage": {
                        "prompt_tokens": 9,
                        "completion_tokens": 1,
                        "prompt_tokens_details": {"cached_tokens": 8},
                    },
                }
            )()
    request = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}["request"]
    assert (request["gen_ai.usage.input_tokens"], request["gen_ai.usage.cache_read.input_tokens"]) == (18, 16)
