"""Connecting to Temporal the same way from every process: pydantic converter with encrypted
payloads, TLS or API key, traced when tracing is on."""

from __future__ import annotations

from temporalio.client import Client, TLSConfig
from temporalio.runtime import Runtime

from orderflow.payload_codec import data_converter
from orderflow.settings import Settings
from orderflow.tracing import temporal_interceptors

DEFAULT_ADDRESS = "localhost:7233"


async def connect_temporal(
    settings: Settings, address: str | None = None, *, runtime: Runtime | None = None
) -> Client:
    tls: TLSConfig | bool = False
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    elif settings.temporal_tls or settings.temporal_api_key:
        tls = True
    return await Client.connect(
        address or settings.temporal_address or DEFAULT_ADDRESS,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key,
        tls=tls,
        data_converter=data_converter(settings),
        # Workers built on this client trace with the same interceptors.
        interceptors=temporal_interceptors(settings),
        # A worker passes its own, which exports the SDK's metrics; others use the default.
        runtime=runtime,
    )
