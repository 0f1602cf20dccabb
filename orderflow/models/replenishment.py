"""What the scheduled replenishment run takes, decides and reports: the contract between
`ReplenishmentWorkflow`, its activities, the settings and the command line."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field


class ReplenishmentParameters(BaseModel):
    """The planning assumptions: how sure, how long the supplier takes, how often we look."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Cycle service level: the chance a replenishment cycle ends without a stock-out.
    service_level: float = Field(default=0.95, ge=0.5, lt=1.0)
    lead_time_days: float = Field(default=7.0, ge=0.0, le=365.0)
    review_period_days: float = Field(default=1.0, ge=0.0, le=365.0)
    # Days of sales history the forecast learns from (ending yesterday).
    history_days: int = Field(default=365, ge=7, le=3 * 365)


class ReplenishmentSettings(ReplenishmentParameters):
    """`Settings.replenishment`: the parameters plus when the schedule runs."""

    schedule_id: str = "replenishment-daily"
    # Standard cron, in UTC: daily at 05:00 by default, before purchasing starts its day.
    schedule_cron: str = "0 5 * * *"
    # SKUs forecast per activity call.
    batch_size: int = Field(default=50, ge=1, le=1000)

    def parameters(self) -> ReplenishmentParameters:
        return ReplenishmentParameters(
            service_level=self.service_level,
            lead_time_days=self.lead_time_days,
            review_period_days=self.review_period_days,
            history_days=self.history_days,
        )


class ReplenishmentInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    parameters: ReplenishmentParameters = Field(default_factory=ReplenishmentParameters)
    # None: every active SKU with a stock row.
    skus: list[str] | None = None
    batch_size: int = Field(default=50, ge=1, le=1000)
    # The planning day (history ends the day before); None: the run's own day (UTC).
    as_of: date | None = None


class PlanBatchInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    skus: list[str]
    # The planning day: history ends the day before.
    as_of: date
    parameters: ReplenishmentParameters


class SkuPlan(BaseModel):
    """One SKU's forecast and (s, S) levels; `skipped` says why a SKU was left as it was."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str
    skipped: str | None = None
    method: str = ""
    sales_days: int = 0
    mean_daily_demand: float = 0.0
    sigma: float = 0.0
    safety_stock: int = 0
    reorder_point: int = 0
    order_up_to: int = 0
    inventory_position: int = 0
    order_quantity: int = 0


class ApplyPlansInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    run_key: str
    as_of: date
    plans: list[SkuPlan]


class RaisedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sku: str
    quantity: int
    request_id: int


class ReplenishmentReport(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: date
    planned: list[SkuPlan]
    skipped: list[SkuPlan]
    raised: list[RaisedRequest]
