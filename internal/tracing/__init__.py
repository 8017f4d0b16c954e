"""OpenTelemetry tracing set-up: a span per reconcile and child spans per API call are created by the
controller and client; this module only chooses the exporters (OTLP over HTTP, console, or none)."""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

EXPORTERS = ("none", "otlp", "console")
ENV = "OTEL_TRACES_EXPORTER"


def exporters(flag: str | None = None) -> list[str]:
    """The exporters to use: ``flag`` (--trace-exporter), else $OTEL_TRACES_EXPORTER (OpenTelemetry's
    own variable, a comma-separated list), else none. Raises ValueError naming where a bad value came
    from, so it can be refused before the operator starts."""
    source = "--trace-exporter" if flag else ENV
    raw = flag or os.environ.get(ENV) or "none"
    names = [n.strip().lower() for n in raw.split(",") if n.strip()] or ["none"]
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise ValueError(f"{source}={raw}: unknown trace exporter {unknown[0]!r}; choose one of {', '.join(EXPORTERS)}")
    if "none" in names and len(names) > 1:
        raise ValueError(f"{source}={raw}: 'none' cannot be combined with other exporters")
    return [] if names == ["none"] else names


def setup(exporter: str | list[str] | None = None, service_name: str = "kuberay-operator") -> TracerProvider | None:
    """Install a tracer provider for the process with the given exporters (a list from
    :func:`exporters`, or a single name/None resolved by it). The OTLP endpoint comes from the standard
    OTEL_EXPORTER_OTLP_* variables."""
    names = exporter if isinstance(exporter, list) else exporters(exporter)
    if not names:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    for name in names:
        exp: SpanExporter
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exp = OTLPSpanExporter(timeout=10)
        else:
            exp = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exp))
    trace.set_tracer_provider(provider)
    return provider
