"""Service levels and waits of one order, carried in the workflow input.

Every duration the workflow waits on comes from here, so tests can set seconds and
production days, and a running order keeps the policy it started with.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field


class OrderPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Step 3: review
    review_sla: timedelta = timedelta(hours=4)
    review_deadline: timedelta = timedelta(hours=24)
    # Step 4: backorders
    backorder_reminder_interval: timedelta = timedelta(days=3)
    backorder_cancel_offer_after: timedelta = timedelta(days=7)
    # Step 5: warehouse
    pick_sla: timedelta = timedelta(hours=4)
    auto_warehouse: bool = False
    auto_pick_delay: timedelta = timedelta(0)
    auto_pack_delay: timedelta = timedelta(0)
    # Step 7: tracking
    delivery_grace: timedelta = timedelta(days=1)
    followup_interval: timedelta = timedelta(days=1)
    followup_escalate_after: int = Field(default=3, ge=1)
    followup_max_attempts: int = Field(default=6, ge=1)
    # Step 8: completion
    quiet_period: timedelta = timedelta(days=3)
    review_window: timedelta = timedelta(days=14)
    # Payment: an authorisation (not yet captured) is renewed this long before it lapses,
    # while the order still waits (review, backorder, warehouse, a held booking or capture).
    authorization_renewal_margin: timedelta = timedelta(days=1)
    # A run whose history reaches this many events (or that the server finds large)
    # continues as new with its state, from shipment on.
    continue_as_new_history_length: int = Field(default=8000, ge=20)

    @classmethod
    def instant(cls, *, auto_warehouse: bool = True) -> OrderPolicy:
        """Zero-length waits: the fully automatic path of demos, load and benchmarks."""
        return cls(
            auto_warehouse=auto_warehouse,
            quiet_period=timedelta(0),
            review_window=timedelta(0),
        )
