"""What the risk review scores an order against: its history summary and the scoring config.

`RiskHistory` is everything "as of" the moment of scoring, read from PostgreSQL
(`db.repositories.risk_history`) or computed from past orders in memory
(`policies.risk_history`); both give the same summary for the same data. `RiskConfig` holds
the weights and thresholds of `policies.risk.score_order`, taken from `Settings`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, model_validator

from orderflow.models.order import Strict

if TYPE_CHECKING:
    from orderflow.settings import Settings

Count = Annotated[int, Field(ge=0)]


class HistoryWindow(Strict):
    """How far back each part of the summary looks, so one summary is always a bounded read."""

    # The customer's amounts: their latest orders only, so a decade-old account stays cheap.
    customer_orders: int = Field(default=200, ge=1)
    # The shop's distribution of order values: the latest orders of the whole shop.
    shop_orders: int = Field(default=1000, ge=1)
    # The usual quantity of a SKU: its latest order lines.
    sku_lines: int = Field(default=500, ge=1)


class Velocity(Strict):
    """Orders sharing one key (customer, e-mail, address, payment) shortly before this one."""

    last_hour: Count = 0
    last_day: Count = 0

    @model_validator(mode="after")
    def _hour_within_day(self) -> Velocity:
        if self.last_hour > self.last_day:
            raise ValueError("orders in the last hour cannot exceed those in the last day")
        return self


class AmountDistribution(Strict):
    """Robust summary of order totals: median and MAD, plus the upper quantiles."""

    count: Count = 0
    median: float | None = None
    mad: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None


class SkuUsage(Strict):
    """How many units of one SKU an order line usually carries."""

    lines: Count = 0
    median_quantity: float | None = None
    p95_quantity: float | None = None


class RiskHistory(Strict):
    """The history one order is scored against, as of `as_of` (the order itself excluded)."""

    as_of: datetime
    customer_order_count: Count = 0
    customer_first_order_at: datetime | None = None
    # The customer's past orders shipped to the same address as this one.
    customer_orders_to_address: Count = 0
    # Totals of the customer's latest `HistoryWindow.customer_orders` orders.
    customer_amounts: AmountDistribution = AmountDistribution()
    # The most units the customer ever bought in one order (wholesalers buy in bulk routinely).
    customer_max_quantity: Count | None = None
    shop_amounts: AmountDistribution = AmountDistribution()
    customer_velocity: Velocity = Velocity()
    email_velocity: Velocity = Velocity()
    address_velocity: Velocity = Velocity()
    payment_velocity: Velocity = Velocity()
    # One entry per SKU of the order being scored.
    sku_usage: dict[str, SkuUsage] = Field(default_factory=dict)


def default_weights() -> dict[str, float]:
    """Points each signal contributes at full strength; a score of 100 is the cap."""
    return {
        "payment_failed": 60.0,
        "payment_pending": 10.0,
        "payment_authorized": 5.0,
        "payment_amount_mismatch": 50.0,
        "customer_value_outlier": 35.0,
        "shop_value_outlier": 15.0,
        "new_customer_large_order": 35.0,
        "new_shipping_address": 15.0,
        "velocity_hour": 45.0,
        "velocity_day": 25.0,
        "payment_reused": 40.0,
        "country_mismatch": 20.0,
        "quantity_unusual": 40.0,
        "email_blocked": 80.0,
        "postal_code_blocked": 60.0,
    }


class RiskConfig(Strict):
    """Weights, thresholds and block lists of the risk score (configuration, not code)."""

    flag_threshold: float = Field(default=50.0, ge=0, le=100)
    weights: dict[str, float] = Field(default_factory=default_weights)
    block_list_emails: frozenset[str] = frozenset()
    block_list_postal_codes: frozenset[str] = frozenset()
    # The customer's own history counts once they have this many past orders.
    customer_min_orders: int = Field(default=3, ge=1)
    # Robust z-scores (|x - median| / (1.4826 MAD)) where a value signal starts and saturates.
    value_z_start: float = Field(default=3.0, gt=0)
    value_z_full: float = Field(default=8.0, gt=0)
    # The MAD never counts as less than this share of the median, so identical past amounts
    # (MAD 0) do not make every cent of difference an infinite outlier.
    mad_floor_ratio: float = Field(default=0.1, ge=0)
    # The shop's distribution counts once this many orders are in it.
    shop_min_orders: int = Field(default=50, ge=1)
    # Above the shop's p99 the value signal starts; at this multiple of p99 it is full.
    shop_full_multiple: float = Field(default=5.0, gt=1)
    # "New": fewer past orders than this, or a first order less than this long ago.
    new_customer_max_orders: int = Field(default=2, ge=1)
    new_customer_age: timedelta = timedelta(days=7)
    # A new customer's order is large above the shop's p90; full strength at this multiple.
    new_customer_full_multiple: float = Field(default=4.0, gt=1)
    # Velocity: earlier orders with the same key beyond `allowed` raise the score, linearly
    # up to full strength at `full`.
    velocity_hour_allowed: int = Field(default=0, ge=0)
    velocity_hour_full: int = Field(default=3, ge=1)
    velocity_day_allowed: int = Field(default=2, ge=0)
    velocity_day_full: int = Field(default=6, ge=1)
    # A SKU's history counts once it has this many lines; a line is unusual above
    # `quantity_start_multiple` x its p95, full strength at `quantity_full_multiple` x p95.
    sku_min_lines: int = Field(default=20, ge=1)
    quantity_start_multiple: float = Field(default=3.0, gt=0)
    quantity_full_multiple: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _known_weights(self) -> RiskConfig:
        unknown = set(self.weights) - set(default_weights())
        if unknown:
            raise ValueError(
                f"unknown risk signal(s) in weights: {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(default_weights()))}"
            )
        if self.value_z_full <= self.value_z_start:
            raise ValueError("value_z_full must be above value_z_start")
        if (
            self.velocity_hour_full <= self.velocity_hour_allowed
            or self.velocity_day_full <= self.velocity_day_allowed
        ):
            raise ValueError("velocity full strength must lie above its allowance")
        if self.quantity_full_multiple <= self.quantity_start_multiple:
            raise ValueError("quantity_full_multiple must be above quantity_start_multiple")
        return self

    def weight(self, code: str) -> float:
        return self.weights.get(code, 0.0)

    def is_email_blocked(self, email: str) -> bool:
        """Exact address, or a whole domain listed as `@domain`, case-insensitive."""
        email = email.strip().lower()
        domain = "@" + email.rpartition("@")[2]
        return email in self.block_list_emails or domain in self.block_list_emails

    def is_postal_code_blocked(self, country: str, postal_code: str) -> bool:
        """A postal code listed alone (`10115`) or with its country (`DE:10115`)."""
        code = normalize_postal_code(postal_code)
        return (
            code in self.block_list_postal_codes
            or f"{country.upper()}:{code}" in self.block_list_postal_codes
        )

    @classmethod
    def from_lists(
        cls,
        *,
        emails: list[str] | None = None,
        postal_codes: list[str] | None = None,
        **fields: object,
    ) -> RiskConfig:
        """A config whose block lists are normalised as the look-ups expect."""
        return cls(
            block_list_emails=frozenset(e.strip().lower() for e in emails or [] if e.strip()),
            block_list_postal_codes=frozenset(
                _normalize_block_entry(p) for p in postal_codes or [] if p.strip()
            ),
            **fields,  # type: ignore[arg-type]
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RiskConfig:
        """Defaults, with the weights, threshold and block lists of `settings` on top."""
        return cls.from_lists(
            emails=settings.risk_block_list_emails,
            postal_codes=settings.risk_block_list_postal_codes,
            flag_threshold=settings.risk_flag_threshold,
            weights={**default_weights(), **settings.risk_weights},
        )

    def with_block_lists(self, *, emails: list[str], postal_codes: list[str]) -> RiskConfig:
        """This config with more entries on its block lists."""
        extra = RiskConfig.from_lists(emails=emails, postal_codes=postal_codes)
        return self.model_copy(
            update={
                "block_list_emails": self.block_list_emails | extra.block_list_emails,
                "block_list_postal_codes": self.block_list_postal_codes
                | extra.block_list_postal_codes,
            }
        )


def normalize_postal_code(postal_code: str) -> str:
    return "".join(postal_code.split()).upper()


def _normalize_block_entry(entry: str) -> str:
    country, sep, code = entry.strip().rpartition(":")
    if sep:
        return f"{country.strip().upper()}:{normalize_postal_code(code)}"
    return normalize_postal_code(code)


class CalibrationTarget(Strict):
    """The operating point the risk calibration aims at: catch at least `recall` of the
    labelled fraud while flagging at most `flag_budget` of all orders for review."""

    recall: float = Field(default=0.9, ge=0, le=1)
    flag_budget: float = Field(default=0.08, ge=0, le=1)
    # The latest share of the labelled orders, held out of the fit and judged on.
    holdout: float = Field(default=0.3, gt=0, lt=1)
    # Differences smaller than this (in recall or flag rate) count as a tie.
    tolerance: float = Field(default=0.005, ge=0, le=0.2)
    # Fewer labelled frauds than this on either side of the split: no new version.
    min_positives: int = Field(default=5, ge=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> CalibrationTarget:
        return cls(
            recall=settings.risk_target_recall,
            flag_budget=settings.risk_flag_budget,
            holdout=settings.risk_calibration_holdout,
            tolerance=settings.risk_calibration_tolerance,
            min_positives=settings.risk_calibration_min_positives,
        )


class RiskMetrics(Strict):
    """Flagging at one threshold, judged against labels."""

    threshold: float
    n: Count
    positives: Count
    flagged: Count
    tp: Count
    precision: float
    recall: float
    flag_rate: float


class Calibration(Strict):
    """What one calibration found: the threshold chosen on the train split, its figures on
    both splits, the incumbent's figures on the same holdout, and whether it may go live."""

    threshold: float | None
    target: CalibrationTarget
    # "threshold": the weights in force, a new threshold; "logistic": learned weights too.
    model: str = "threshold"
    weights: dict[str, float] | None = None
    train: RiskMetrics | None = None
    holdout: RiskMetrics | None = None
    incumbent: RiskMetrics | None = None
    target_met_on_train: bool = False
    target_met_on_holdout: bool = False
    accepted: bool = False
    reason: str


class RiskCalibrationRequest(Strict):
    """What starts a calibration: nothing from the schedule (as of the run's start), or the
    moment to judge the labelled history as of (a re-run of a past day)."""

    as_of: datetime | None = None


class RiskCalibrationInput(Strict):
    """One calibration run: its key (a retry of the run inserts no second version) and the
    moment it judges the labelled history as of."""

    calibration_key: str = Field(min_length=1, max_length=200)
    as_of: datetime


class RiskCalibrationResult(Strict):
    """The version a calibration inserted (None: too few labels), and whether it went live."""

    version: int | None
    activated: bool
    calibration: Calibration
