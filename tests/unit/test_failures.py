"""Which failures of a local activity are retried and which end the order: the data's own
faults never pass on a retry, the database's and the network's may."""

from __future__ import annotations

import dataclasses

import asyncpg
import pytest
from pydantic import ValidationError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.failures import classified, describe, is_permanent
from orderflow.models import Order
from orderflow.models.activity_names import UNPROCESSABLE
from tests.helpers import order_json


def _validation_error() -> ValidationError:
    body = order_json()
    body["customer"]["email"] = "ann.secret@example.com"
    body["items"][0]["quantity"] = 0
    try:
        Order.model_validate(body)
    except ValidationError as exc:
        return exc
    raise AssertionError("expected a validation error")


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        OverflowError("date value out of range"),
        asyncpg.DataError("invalid input for query argument $1"),
        asyncpg.CheckViolationError("violates check constraint"),
        asyncpg.ForeignKeyViolationError("violates foreign key"),
    ],
)
def test_data_faults_are_permanent(exc: BaseException) -> None:
    assert is_permanent(exc)


def test_a_model_that_does_not_validate_is_permanent() -> None:
    assert is_permanent(_validation_error())


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.SerializationError("could not serialize access"),
        asyncpg.DeadlockDetectedError("deadlock detected"),
        asyncpg.UniqueViolationError("duplicate key"),
        asyncpg.PostgresConnectionError("connection lost"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        ConnectionResetError("reset"),
        TimeoutError(),
        RuntimeError("something else"),
        KeyError("a bug: retried, so that a fix lets the order go on"),
    ],
)
def test_the_rest_is_retried(exc: BaseException) -> None:
    assert not is_permanent(exc)


def test_the_description_is_short_and_shows_no_address() -> None:
    text = describe(ValueError("no such customer ann.secret@example.com " + "x" * 1000))
    assert "ann.secret" not in text and "***@example.com" in text
    assert len(text) <= 500
    described = describe(_validation_error())
    assert described.startswith("ValidationError: items.0.quantity")
    assert "ann.secret" not in described


async def test_outside_a_local_activity_failures_pass_unchanged() -> None:
    @classified
    async def failing() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        await failing()


def _local_env() -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, is_local=True)
    return env


async def test_in_a_local_activity_a_permanent_failure_is_not_retried() -> None:
    @classified
    async def record() -> None:
        raise OverflowError("date value out of range")

    with pytest.raises(ApplicationError) as raised:
        await _local_env().run(record)
    assert raised.value.non_retryable and raised.value.type == UNPROCESSABLE
    assert raised.value.message == "OverflowError: date value out of range"


async def test_in_a_local_activity_a_transient_failure_is_retried() -> None:
    @classified
    async def record() -> None:
        raise asyncpg.SerializationError("could not serialize access")

    with pytest.raises(asyncpg.SerializationError):
        await _local_env().run(record)


async def test_in_a_regular_activity_every_failure_keeps_its_rules() -> None:
    @classified
    async def book() -> None:
        raise ValueError("a carrier's odd answer")

    with pytest.raises(ValueError):
        await ActivityEnvironment().run(book)
