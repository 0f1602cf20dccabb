"""Risk score of one order from its own features and its history: pure and explainable.

Each signal is a small function returning a `RiskReason` (a code, a sentence a reviewer can
read, and the points it adds) or nothing. Points are the signal's configured weight times
its strength in [0, 1]; the score is their sum capped at 100, and the order is flagged at
the configured threshold. No I/O and no clock: "now" is `history.as_of`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from orderflow.models import Order, RiskAssessment, RiskReason
from orderflow.models.risk import RiskConfig, RiskHistory, Velocity

# The MAD of a normal distribution is 0.6745 sigma; this makes robust z comparable to z.
MAD_TO_SIGMA = 1.4826

Signal = Callable[[Order, RiskHistory, RiskConfig], RiskReason | None]


def _reason(code: str, strength: float, message: str, config: RiskConfig) -> RiskReason | None:
    points = round(config.weight(code) * min(max(strength, 0.0), 1.0), 2)
    if points <= 0:
        return None
    return RiskReason(code=code, message=message, points=points)


def _ramp(value: float, start: float, full: float) -> float:
    """0 at or below `start`, 1 at or above `full`, linear between."""
    if value <= start:
        return 0.0
    if value >= full:
        return 1.0
    return (value - start) / (full - start)


def _log_ramp(ratio: float, full_ratio: float) -> float:
    """0 at or below ratio 1, 1 at `full_ratio`, on a log scale (ratios of value multiply)."""
    if ratio <= 1.0:
        return 0.0
    return min(1.0, math.log(ratio) / math.log(full_ratio))


def _money(value: float) -> str:
    return f"{value:,.2f}"


def payment_status(order: Order, history: RiskHistory, config: RiskConfig) -> RiskReason | None:
    """Payment not captured: failed is worst, pending and authorized count less."""
    status = order.payment.status
    if status == "failed":
        return _reason("payment_failed", 1.0, "The payment failed.", config)
    if status == "pending":
        return _reason("payment_pending", 1.0, "The payment is still pending.", config)
    if status == "authorized":
        return _reason(
            "payment_authorized", 1.0, "The payment is authorized but not captured.", config
        )
    return None


def payment_amount(order: Order, history: RiskHistory, config: RiskConfig) -> RiskReason | None:
    """Payment amount differs from the order total (validation refuses this at intake; the
    signal guards orders that bypassed it)."""
    if order.payment.amount == order.total:
        return None
    return _reason(
        "payment_amount_mismatch",
        1.0,
        f"The payment amount {order.payment.amount} differs from the order total {order.total}.",
        config,
    )


def robust_z(value: float, median: float, mad: float, floor_ratio: float) -> float:
    """How many robust standard deviations `value` lies above `median` (0 when below)."""
    scale = max(MAD_TO_SIGMA * mad, floor_ratio * abs(median), 0.01)
    return max(0.0, (value - median) / scale)


def customer_value(order: Order, history: RiskHistory, config: RiskConfig) -> RiskReason | None:
    """Order value far above the customer's own usual amount (robust z over median/MAD),
    when the order is also large for the shop (above its 90th percentile, if known)."""
    amounts = history.customer_amounts
    if (
        history.customer_order_count < config.customer_min_orders
        or amounts.median is None
        or amounts.mad is None
    ):
        return None
    total = float(order.total)
    shop = history.shop_amounts
    # A 90 EUR basket from someone who usually spends 20 is unusual but puts little at stake.
    if shop.count >= config.shop_min_orders and shop.p90 is not None and total <= shop.p90:
        return None
    z = robust_z(total, amounts.median, amounts.mad, config.mad_floor_ratio)
    strength = _ramp(z, config.value_z_start, config.value_z_full)
    return _reason(
        "customer_value_outlier",
        strength,
        f"The order total {_money(total)} is {total / max(amounts.median, 0.01):.1f}x the "
        f"customer's usual {_money(amounts.median)} (robust z {z:.1f} over "
        f"{amounts.count} past orders).",
        config,
    )


def shop_value(order: Order, history: RiskHistory, config: RiskConfig) -> RiskReason | None:
    """Order value above the shop's 99th percentile of recent orders."""
    shop = history.shop_amounts
    if shop.count < config.shop_min_orders or shop.p99 is None or shop.p99 <= 0:
        return None
    total = float(order.total)
    strength = _log_ramp(total / shop.p99, config.shop_full_multiple)
    return _reason(
        "shop_value_outlier",
        strength,
        f"The order total {_money(total)} is above 99% of the shop's recent orders "
        f"(p99 {_money(shop.p99)}).",
        config,
    )


def is_new_customer(history: RiskHistory, config: RiskConfig) -> bool:
    """No or very few past orders, or a first order only days ago."""
    first = history.customer_first_order_at
    return history.customer_order_count < config.new_customer_max_orders or (
        first is not None and history.as_of - first < config.new_customer_age
    )


def new_customer_large_order(
    order: Order, history: RiskHistory, config: RiskConfig
) -> RiskReason | None:
    """A new customer placing a large order (above the shop's 90th percentile)."""
    shop = history.shop_amounts
    if not is_new_customer(history, config) or shop.count < config.shop_min_orders:
        return None
    if shop.p90 is None or shop.p90 <= 0:
        return None
    total = float(order.total)
    strength = _log_ramp(total / shop.p90, config.new_customer_full_multiple)
    past = history.customer_order_count
    who = (
        "as a new customer's first order"
        if past == 0
        else f"from a new customer ({past} past order(s))"
    )
    return _reason(
        "new_customer_large_order",
        strength,
        f"A large order ({_money(total)}, above 90% of the shop's orders at "
        f"{_money(shop.p90)}) {who}.",
        config,
    )


def new_shipping_address(
    order: Order, history: RiskHistory, config: RiskConfig
) -> RiskReason | None:
    """An established customer shipping to an address they never used before."""
    if (
        history.customer_order_count < config.customer_min_orders
        or history.customer_orders_to_address > 0
    ):
        return None
    address = order.shipping_address
    return _reason(
        "new_shipping_address",
        1.0,
        # The reason names the signal, not the street: it is kept in history and shown to staff.
        f"None of the customer's {history.customer_order_count} past orders went to this "
        f"shipping address (country {address.country}).",
        config,
    )


def _velocities(history: RiskHistory) -> dict[str, Velocity]:
    return {
        "customer": history.customer_velocity,
        "e-mail": history.email_velocity,
        "shipping address": history.address_velocity,
    }


def velocity_hour(order: Order, history: RiskHistory, config: RiskConfig) -> RiskReason | None:
    """Orders from the same customer, e-mail or address in the last hour."""
    key, velocity = max(_velocities(history).items(), key=lambda kv: kv[1].last_hour)
    strength = _ramp(velocity.last_hour, config.velocity_hour_allowed, config.velocity_hour_full)
    return _reason(
        "velocity_hour",
        strength,
        f"{velocity.last_hour} earlier order(s) from the same {key} in the last hour.",
        config,
    )


def velocity_day(order: Order, history: RiskHistory, config: RiskConfig) -> RiskReason | None:
    """Many orders from the same customer, e-mail or address in the last day."""
    key, velocity = max(_velocities(history).items(), key=lambda kv: kv[1].last_day)
    strength = _ramp(velocity.last_day, config.velocity_day_allowed, config.velocity_day_full)
    return _reason(
        "velocity_day",
        strength,
        f"{velocity.last_day} earlier order(s) from the same {key} in the last day.",
        config,
    )


def payment_reused(order: Order, history: RiskHistory, config: RiskConfig) -> RiskReason | None:
    """The same payment transaction already paid another order in the last day."""
    reused = history.payment_velocity.last_day
    if reused <= 0:
        return None
    return _reason(
        "payment_reused",
        1.0,
        f"The order's payment was already used by {reused} other order(s) in the last day.",
        config,
    )


def country_mismatch(order: Order, history: RiskHistory, config: RiskConfig) -> RiskReason | None:
    """Shipping and billing countries differ."""
    billing = order.effective_billing_address.country
    shipping = order.shipping_address.country
    if billing == shipping:
        return None
    return _reason(
        "country_mismatch",
        1.0,
        f"Shipping country {shipping} differs from billing country {billing}.",
        config,
    )


def unusual_quantity(order: Order, history: RiskHistory, config: RiskConfig) -> RiskReason | None:
    """A line's quantity far above that SKU's usual, unless the customer routinely buys so much."""
    worst: tuple[float, str] | None = None
    for item in order.items:
        usage = history.sku_usage.get(item.sku)
        if usage is None or usage.lines < config.sku_min_lines or usage.p95_quantity is None:
            continue
        # A wholesaler who bought this many units before is doing what they always do.
        if (
            history.customer_max_quantity is not None
            and item.quantity <= history.customer_max_quantity
        ):
            continue
        usual = max(usage.p95_quantity, 1.0)
        multiple = item.quantity / usual
        strength = _ramp(multiple, config.quantity_start_multiple, config.quantity_full_multiple)
        if strength > 0 and (worst is None or strength > worst[0]):
            worst = (
                strength,
                f"{item.quantity} x {item.sku} is {multiple:.0f}x that SKU's usual quantity "
                f"per order (95% of lines have at most {usage.p95_quantity:g}).",
            )
    if worst is None:
        return None
    return _reason("quantity_unusual", worst[0], worst[1], config)


def blocked_email(order: Order, history: RiskHistory, config: RiskConfig) -> RiskReason | None:
    if not config.is_email_blocked(order.customer.email):
        return None
    return _reason(
        "email_blocked", 1.0, "The customer's e-mail address is on the block list.", config
    )


def blocked_postal_code(
    order: Order, history: RiskHistory, config: RiskConfig
) -> RiskReason | None:
    hits = [
        f"{role} address ({address.country})"
        for role, address in (
            ("shipping", order.shipping_address),
            ("billing", order.billing_address),
        )
        if address is not None
        and config.is_postal_code_blocked(address.country, address.postal_code)
    ]
    if not hits:
        return None
    return _reason(
        "postal_code_blocked",
        1.0,
        f"Postal code on the block list: {', '.join(hits)}.",
        config,
    )


SIGNALS: tuple[Signal, ...] = (
    payment_status,
    payment_amount,
    customer_value,
    shop_value,
    new_customer_large_order,
    new_shipping_address,
    velocity_hour,
    velocity_day,
    payment_reused,
    country_mismatch,
    unusual_quantity,
    blocked_email,
    blocked_postal_code,
)


def score_order(order: Order, history: RiskHistory, config: RiskConfig) -> RiskAssessment:
    """Score `order` 0..100 against `history`; flagged at `config.flag_threshold`."""
    reasons = [r for signal in SIGNALS if (r := signal(order, history, config)) is not None]
    reasons.sort(key=lambda r: (-r.points, r.code))
    score = round(min(100.0, sum(r.points for r in reasons)), 2)
    return RiskAssessment(score=score, flagged=score >= config.flag_threshold, reasons=reasons)
