"""The running API against its own OpenAPI document, with schemathesis over real HTTP: no
5xx, only declared status codes, declared content types and bodies that match the
declared schemas; once per operator role and once with a customer's access token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from temporalio.testing import WorkflowEnvironment

from orderflow.models import OrderPolicy
from orderflow.settings import ROLES
from stack.supervisor import free_port
from tests.helpers import order_json
from tests.servers import Stack, running_stack

pytestmark = pytest.mark.integration

# Few examples per operation and run: the suite's time stays bounded on a small CI machine.
EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Server-sent event streams never end on their own: a generated request would hold the
# test until `stream_max_seconds`. tests/integration/test_stream.py covers them.
SKIPPED = {("GET", "/orders/{order_id}/events/stream"), ("GET", "/events/stream")}


@pytest.fixture(scope="module")
async def stack(temporal_env: WorkflowEnvironment, database_url: str) -> AsyncIterator[Stack]:
    async with running_stack(
        temporal_env,
        database_url,
        policy=OrderPolicy.instant(auto_warehouse=False),
        # No mail server listens here: the mailbox endpoints answer their declared 503.
        mailbox_url=f"http://127.0.0.1:{free_port()}",
    ) as running:
        yield running


def _fuzz(base_url: str, token: str, path_parameters: dict[str, str]) -> list[str]:
    """Failures of every operation, one line each (empty: all conform)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    session = requests.Session()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        fixed = {k: v for k, v in path_parameters.items() if "{" + k + "}" in operation.path}
        strategy = operation.as_strategy(path_parameters=fixed or None)
        checks = CHECKS
        if operation.path.startswith("/mailbox/"):
            # No mail server runs here, so the mailbox answers its declared 503; the other
            # checks still hold it to its schema.
            checks = [c for c in CHECKS if c is not not_a_server_error]

        run = _conformance_test(strategy, base_url, session, token, checks)
        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a group
            first = str(exc).strip().splitlines()
            failures.append(
                f"{operation.method.upper()} {operation.path}: {type(exc).__name__}: "
                + " | ".join(first[:6])
            )
    return failures


def _conformance_test(
    strategy: Any, base_url: str, session: requests.Session, token: str, checks: list[Any]
) -> Any:
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=strategy)
    def run(case: Any) -> None:
        case.call_and_validate(
            base_url=base_url,
            session=session,
            headers={"Authorization": f"Bearer {token}"},
            checks=checks,
            timeout=30,
        )

    return run


async def _fuzz_as(stack: Stack, token: str, **path_parameters: str) -> list[str]:
    base_url = f"http://127.0.0.1:{stack.settings.api_port}"
    # schemathesis calls with blocking requests; the API serves on this event loop.
    return await asyncio.to_thread(_fuzz, base_url, token, path_parameters)


@pytest.mark.parametrize("role", ROLES)
async def test_every_operation_conforms_for_each_role(stack: Stack, role: str) -> None:
    failures = await _fuzz_as(stack, stack.settings.token_for(role))
    assert not failures, "\n".join(failures)


async def test_every_operation_conforms_for_a_customer(stack: Stack) -> None:
    body = order_json()
    placed = await stack.http("POST", "/orders", json=body)
    assert placed.status_code == 202, placed.text
    failures = await _fuzz_as(stack, placed.json()["access_token"], order_id=body["order_id"])
    assert not failures, "\n".join(failures)
