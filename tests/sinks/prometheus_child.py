"""A long-running process that exposes tokenlog's token metrics to Prometheus (tests/sinks/test_prometheus.py).

``python prometheus_child.py METRICS_PORT SERVER_URL``: serves ``/metrics`` on 127.0.0.1:METRICS_PORT through the
OpenTelemetry Prometheus exporter, makes real openai SDK calls to the local server at SERVER_URL through
``@track_usage`` with an ``OpenTelemetrySink``, prints what it recorded (tokens by model and type) as one JSON line,
then keeps serving until it is terminated.
"""

from __future__ import annotations

import json
import sys
import time

import openai
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import start_http_server

import tokenlog


def main() -> None:
    port, url = int(sys.argv[1]), sys.argv[2]
    start_http_server(port, addr="127.0.0.1")
    provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    tokenlog.configure(sinks=[tokenlog.OpenTelemetrySink(meter_provider=provider), "usage.csv"])
    client = openai.OpenAI(base_url=url + "/v1", api_key="k", max_retries=0)

    @tokenlog.track_usage
    def ask(model: str, question: str) -> object:
        return client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}])

    with tokenlog.usage_session("metrics") as session:
        for i in range(6):
            ask("mistral-small-latest" if i % 3 else "mistral-large-latest", "count to " + "ten " * (i + 1))
    recorded = {
        model: {"input": totals.prompt_tokens, "output": totals.completion_tokens}
        for model, totals in session.by_model.items()
    }
    print(json.dumps(recorded), flush=True)
    while True:  # a service: it keeps running, and Prometheus keeps scraping it
        time.sleep(1)


if __name__ == "__main__":
    main()
