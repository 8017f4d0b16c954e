"""OpenTelemetry tracing set-up: a span per reconcile and child spans per API call are created by the
controller and client; this module only chooses the exporter (OTLP over HTTP, console, or none)."""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

EXPORTERS = ("none", "otlp", "console")


def setup(exporter: str | None = None, service_name: str = "kuberay-operator") -> TracerProvider | None:
    """Install a tracer provider for the process. ``exporter`` defaults to $OTEL_TRACES_EXPORTER
    (OpenTelemetry's own variable), then "none". The OTLP endpoint comes from the standard
    OTEL_EXPORTER_OTLP_* variables."""
    choice = (exporter or os.environ.get("OTEL_TRACES_EXPORTER") or "none").lower()
    if choice not in EXPORTERS:
        raise ValueError(f"unknown trace exporter {choice!r}; choose one of {', '.join(EXPORTERS)}")
    if choice == "none":
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    exp: SpanExporter
    if choice == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exp = OTLPSpanExporter(timeout=10)
    else:
        exp = ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exp))
    trace.set_tracer_provider(provider)
    return provider
