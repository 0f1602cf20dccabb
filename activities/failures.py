"""Which failures of an activity may pass on a retry, and which never will.

A local activity is retried until it succeeds: right for PostgreSQL restarting, a lost
connection, a serialization failure or a deadlock, wrong for a value that can never be
stored (a time before year 1, a number out of range, a model that does not validate, a
constraint the data breaks). Those would hold the order at its step forever. So every
local activity runs under `classified`: a permanent failure leaves as a non-retryable
`ApplicationError` of type `UNPROCESSABLE`, which the order workflow turns into a REJECTED
order with the reason and a task for customer service. Anything not known to be permanent
is retried, as before; a regular activity (a call to the carrier) keeps its own rules.

Every group gets it from `activities/registry.py`, which wraps each `@activity.defn` method
as it registers it: an activity added later is classified by being written.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from orderflow.models.activity_names import UNPROCESSABLE
from orderflow.redact import mask_addresses

# Pass on a retry: the database or the network was briefly unavailable, or a concurrent
# transaction won (serialization failure, deadlock, a unique key taken by a racing attempt).
TRANSIENT: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.LockNotAvailableError,
    asyncpg.QueryCanceledError,
    asyncpg.UniqueViolationError,
    ConnectionError,
    TimeoutError,
    OSError,
)
# Never pass: the data itself is wrong for the model or the database.
PERMANENT: tuple[type[BaseException], ...] = (
    ValidationError,
    ValueError,
    OverflowError,
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)
# A failure message goes into the order's timeline and the department's queue: bounded.
_MAX_MESSAGE = 500


def is_permanent(exc: BaseException) -> bool:
    """True when retrying `exc` cannot succeed."""
    return isinstance(exc, PERMANENT) and not isinstance(exc, TRANSIENT)


def describe(exc: BaseException) -> str:
    """A short readable message, without customers' e-mail addresses."""
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        text = f"{where}: {first['msg']}" if where else str(first["msg"])
        if exc.error_count() > 1:
            text += f" (and {exc.error_count() - 1} more)"
    else:
        text = str(exc) or type(exc).__name__
    text = mask_addresses(f"{type(exc).__name__}: {text}")
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def unprocessable(exc: BaseException) -> ApplicationError:
    """The non-retryable error a permanent failure leaves an activity as."""
    return ApplicationError(describe(exc), type=UNPROCESSABLE, non_retryable=True)


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def classified(fn: F) -> F:
    """`fn` (an activity) with its permanent failures made non-retryable when it runs as a
    local activity; other failures, and every failure of a regular activity, unchanged."""

    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except ApplicationError:
            raise
        except Exception as exc:
            if is_permanent(exc) and activity.in_activity() and activity.info().is_local:
                raise unprocessable(exc) from exc
            raise

    return run  # type: ignore[return-value]
