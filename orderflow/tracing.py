"""Traces across processes (OpenTelemetry): one order's API call, its workflow and its
activities form one trace, carried between processes in Temporal's headers.

Off unless `ORDERFLOW_TRACING_EXPORTER` names an exporter. A process that already has a
tracer provider of its own (an application embedding ours, the tests) keeps it.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor

from orderflow.settings import Settings

SERVICE_NAME = "orderflow"


def tracing_on(settings: Settings) -> bool:
    return settings.tracing_exporter != "none"


def _exporter(settings: Settings) -> SpanExporter:
    if settings.tracing_exporter == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.tracing_otlp_endpoint)


def install_tracing(settings: Settings) -> None:
    """The process's tracer provider, exporting spans as configured (once per process)."""
    if not tracing_on(settings) or isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, name the process further.
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(_exporter(settings)))
    trace.set_tracer_provider(provider)


def temporal_interceptors(settings: Settings) -> list[Interceptor]:
    """What a Temporal client (and every worker built on it) traces with: nothing when
    tracing is off."""
    if not tracing_on(settings):
        return []
    install_tracing(settings)
    return [TracingInterceptor()]
