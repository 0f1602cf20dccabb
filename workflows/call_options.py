"""How the shop's workflows call their activities: the retries and timeouts of database
steps and of calls to outside services, the same for every workflow."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

# Database steps are short: retried until PostgreSQL answers again.
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
)
DB_TIMEOUT = timedelta(seconds=15)
# Calls to outside services (carrier, PSP) are regular activities with their own retries.
SERVICE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)
SERVICE_TIMEOUT = timedelta(seconds=30)
