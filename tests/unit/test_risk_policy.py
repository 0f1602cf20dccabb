"""Risk score: each signal on its own, edge cases of history, and properties of the whole."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderflow.models import Address, Customer, Order, OrderItem, Payment
from orderflow.models.risk import (
    AmountDistribution,
    RiskConfig,
    RiskHistory,
    SkuUsage,
    Velocity,
    default_weights,
)
from orderflow.settings import Settings
from policies import risk
from policies.risk import score_order

AS_OF = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
HOME = Address(name="Ann Lee", line1="1 Main St", city="Berlin", postal_code="10115", country="DE")
CONFIG = RiskConfig()
WEIGHTS = default_weights()


def make_order(
    *,
    items: list[tuple[str, int, str]] | None = None,
    status: str = "captured",
    email: str = "ann@example.com",
    shipping: Address = HOME,
    billing: Address | None = None,
    txn: str = "pay_1",
) -> Order:
    order_items = [
        OrderItem(sku=sku, quantity=qty, unit_price=Decimal(price))
        for sku, qty, price in (items or [("SKU-RED-MUG", 2, "12.50")])
    ]
    total = sum((i.unit_price * i.quantity for i in order_items), Decimal("0.00"))
    return Order(
        order_id="A-1",
        channel="web",
        customer=Customer(id="C-42", email=email, name="Ann Lee"),
        items=order_items,
        currency="EUR",
        shipping_address=shipping,
        billing_address=billing,
        payment=Payment(
            method="card",
            transaction_id=txn,
            amount=total,
            status=status,  # type: ignore[arg-type]
            # An authorised payment states when it lapses.
            authorization_expires_at=AS_OF + timedelta(days=7) if status == "authorized" else None,
        ),
        placed_at=AS_OF,
    )


SHOP = AmountDistribution(count=1000, median=35.0, mad=20.0, p90=135.0, p95=1000.0, p99=4700.0)
LOYAL = AmountDistribution(count=12, median=40.0, mad=10.0, p90=70.0, p95=80.0, p99=90.0)
USUAL_MUGS = {"SKU-RED-MUG": SkuUsage(lines=400, median_quantity=1.0, p95_quantity=3.0)}


def make_history(**fields: Any) -> RiskHistory:
    """An established customer's history: 12 orders over a year, all to their home address."""
    base: dict[str, Any] = {
        "as_of": AS_OF,
        "customer_order_count": 12,
        "customer_first_order_at": AS_OF - timedelta(days=365),
        "customer_orders_to_address": 12,
        "customer_amounts": LOYAL,
        "customer_max_quantity": 4,
        "shop_amounts": SHOP,
        "sku_usage": USUAL_MUGS,
    }
    base.update(fields)
    return RiskHistory(**base)


def codes(order: Order, history: RiskHistory, config: RiskConfig = CONFIG) -> set[str]:
    return {r.code for r in score_order(order, history, config).reasons}


def test_an_ordinary_order_of_a_loyal_customer_scores_zero() -> None:
    assessment = score_order(make_order(), make_history(), CONFIG)
    assert assessment.score == 0
    assert assessment.reasons == []
    assert not assessment.flagged


# ---- payment ----


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("failed", "payment_failed"),
        ("pending", "payment_pending"),
        ("authorized", "payment_authorized"),
    ],
)
def test_payment_not_captured(status: str, code: str) -> None:
    reason = risk.payment_status(make_order(status=status), make_history(), CONFIG)
    assert reason is not None
    assert reason.code == code
    assert reason.points == WEIGHTS[code]


def test_failed_payment_counts_most_and_alone_flags() -> None:
    points = {
        s: score_order(make_order(status=s), make_history(), CONFIG).score
        for s in ("captured", "authorized", "pending", "failed")
    }
    assert points["captured"] < points["authorized"] < points["pending"] < points["failed"]
    assert score_order(make_order(status="failed"), make_history(), CONFIG).flagged


def test_payment_amount_mismatch_is_caught_even_past_validation() -> None:
    order = make_order()
    tampered = order.model_copy(
        update={"payment": order.payment.model_copy(update={"amount": Decimal("1.00")})}
    )
    assert risk.payment_amount(order, make_history(), CONFIG) is None
    reason = risk.payment_amount(tampered, make_history(), CONFIG)
    assert reason is not None
    assert "1.00" in reason.message and "25.00" in reason.message


# ---- value against the customer's own history ----

BIG = [("SKU-ESPRESSO-MACHINE", 1, "549.00")]


def test_customer_value_outlier_on_a_large_order_for_a_small_spender() -> None:
    reason = risk.customer_value(make_order(items=BIG), make_history(), CONFIG)
    assert reason is not None
    assert reason.points == WEIGHTS["customer_value_outlier"]
    assert "549.00" in reason.message and "40.00" in reason.message


def test_customer_value_needs_history() -> None:
    first_ever = make_history(
        customer_order_count=0,
        customer_first_order_at=None,
        customer_orders_to_address=0,
        customer_amounts=AmountDistribution(),
        customer_max_quantity=None,
    )
    assert risk.customer_value(make_order(items=BIG), first_ever, CONFIG) is None
    two_orders = make_history(customer_order_count=2)
    assert risk.customer_value(make_order(items=BIG), two_orders, CONFIG) is None


def test_customer_value_ignores_orders_small_for_the_shop() -> None:
    # 4x the customer's usual, but below the shop's 90th percentile: little at stake.
    order = make_order(items=[("SKU-RED-MUG", 10, "12.50")])
    assert risk.customer_value(order, make_history(), CONFIG) is None


def test_identical_past_amounts_do_not_make_every_cent_an_outlier() -> None:
    same = AmountDistribution(count=10, median=200.0, mad=0.0, p90=200.0, p95=200.0, p99=200.0)
    history = make_history(customer_amounts=same)
    slightly_more = make_order(items=[("SKU-RED-MUG", 17, "12.50")])  # 212.50
    assert risk.customer_value(slightly_more, history, CONFIG) is None
    much_more = make_order(items=[("SKU-ESPRESSO-MACHINE", 2, "549.00")])
    reason = risk.customer_value(much_more, history, CONFIG)
    assert reason is not None and reason.points == WEIGHTS["customer_value_outlier"]


def test_customer_value_grows_with_the_deviation() -> None:
    points = []
    for price in ("140.00", "150.00", "400.00"):
        reason = risk.customer_value(
            make_order(items=[("SKU-GRINDER", 1, price)]), make_history(), CONFIG
        )
        points.append(reason.points if reason else 0.0)
    assert points == sorted(points)
    assert 0 < points[0] < points[1] < points[-1] == WEIGHTS["customer_value_outlier"]


def test_robust_z_is_zero_below_the_median() -> None:
    assert risk.robust_z(10.0, 40.0, 10.0, 0.1) == 0.0
    assert risk.robust_z(40.0 + 1.4826 * 10 * 3, 40.0, 10.0, 0.1) == pytest.approx(3.0)


# ---- value against the shop ----


def test_shop_value_outlier_above_the_99th_percentile_only() -> None:
    below = make_order(items=[("SKU-ESPRESSO-MACHINE", 8, "549.00")])  # 4392 < p99 4700
    assert risk.shop_value(below, make_history(), CONFIG) is None
    far_above = make_order(items=[("SKU-ESPRESSO-MACHINE", 50, "549.00")])  # 5.8x p99
    reason = risk.shop_value(far_above, make_history(), CONFIG)
    assert reason is not None and reason.points == WEIGHTS["shop_value_outlier"]


def test_shop_value_needs_a_distribution() -> None:
    small_shop = make_history(
        shop_amounts=AmountDistribution(count=5, median=1.0, mad=0.0, p90=1.0, p95=1.0, p99=1.0)
    )
    huge = make_order(items=[("SKU-ESPRESSO-MACHINE", 50, "549.00")])
    assert risk.shop_value(huge, small_shop, CONFIG) is None
    assert risk.shop_value(huge, make_history(shop_amounts=AmountDistribution()), CONFIG) is None


def test_huge_values_stay_within_the_cap() -> None:
    huge = make_order(items=[("SKU-ESPRESSO-MACHINE", 10_000, "999.99")], status="failed")
    history = make_history(
        customer_order_count=0,
        customer_first_order_at=None,
        customer_amounts=AmountDistribution(),
        customer_orders_to_address=0,
        customer_max_quantity=None,
        customer_velocity=Velocity(last_hour=50, last_day=500),
    )
    assessment = score_order(huge, history, CONFIG)
    assert assessment.score == 100
    assert assessment.flagged
    assert sum(r.points for r in assessment.reasons) > 100


# ---- new customers ----

NEW = {
    "customer_order_count": 0,
    "customer_first_order_at": None,
    "customer_orders_to_address": 0,
    "customer_amounts": AmountDistribution(),
    "customer_max_quantity": None,
}


def test_first_order_ever_that_is_large() -> None:
    reason = risk.new_customer_large_order(make_order(items=BIG), make_history(**NEW), CONFIG)
    assert reason is not None
    assert "first order" in reason.message
    assert 0 < reason.points <= WEIGHTS["new_customer_large_order"]


def test_first_order_ever_that_is_small_scores_nothing() -> None:
    assessment = score_order(make_order(), make_history(**NEW), CONFIG)
    assert assessment.score == 0


def test_first_order_ever_of_an_empty_shop_scores_nothing() -> None:
    nothing = RiskHistory(as_of=AS_OF)
    assert score_order(make_order(items=BIG), nothing, CONFIG).score == 0


def test_an_account_days_old_is_still_new() -> None:
    young = make_history(customer_order_count=5, customer_first_order_at=AS_OF - timedelta(days=2))
    assert risk.new_customer_large_order(make_order(items=BIG), young, CONFIG) is not None
    assert risk.new_customer_large_order(make_order(items=BIG), make_history(), CONFIG) is None


def test_new_customer_large_order_grows_with_value_up_to_its_weight() -> None:
    points = []
    for price in ("100.00", "200.00", "400.00", "549.00", "2000.00"):
        reason = risk.new_customer_large_order(
            make_order(items=[("SKU-GRINDER", 1, price)]), make_history(**NEW), CONFIG
        )
        points.append(reason.points if reason else 0.0)
    assert points == sorted(points)
    assert points[0] == 0 and points[-1] == WEIGHTS["new_customer_large_order"]


# ---- addresses ----


def test_new_shipping_address_of_an_established_customer() -> None:
    elsewhere = Address(
        name="Ann Lee", line1="9 Dock Rd", city="Hamburg", postal_code="20095", country="DE"
    )
    reason = risk.new_shipping_address(
        make_order(shipping=elsewhere), make_history(customer_orders_to_address=0), CONFIG
    )
    assert reason is not None and "shipping address" in reason.message
    assert "9 Dock Rd" not in reason.message and "20095" not in reason.message
    assert risk.new_shipping_address(make_order(), make_history(), CONFIG) is None
    assert (
        risk.new_shipping_address(make_order(shipping=elsewhere), make_history(**NEW), CONFIG)
        is None
    )


def test_country_mismatch() -> None:
    abroad = Address(
        name="Ann Lee", line1="Calle Mayor 3", city="Palma", postal_code="07001", country="ES"
    )
    reason = risk.country_mismatch(
        make_order(shipping=abroad, billing=HOME), make_history(), CONFIG
    )
    assert reason is not None and "ES" in reason.message and "DE" in reason.message
    assert risk.country_mismatch(make_order(), make_history(), CONFIG) is None
    same_country = HOME.model_copy(update={"line1": "2 Other St"})
    assert risk.country_mismatch(make_order(billing=same_country), make_history(), CONFIG) is None


def test_a_traveller_alone_is_not_flagged() -> None:
    abroad = Address(
        name="Ann Lee", line1="Calle Mayor 3", city="Palma", postal_code="07001", country="ES"
    )
    assessment = score_order(
        make_order(shipping=abroad, billing=HOME),
        make_history(customer_orders_to_address=0),
        CONFIG,
    )
    assert {r.code for r in assessment.reasons} == {"country_mismatch", "new_shipping_address"}
    assert not assessment.flagged


# ---- velocity ----


def test_velocity_hour_names_the_busiest_key() -> None:
    history = make_history(
        customer_velocity=Velocity(last_hour=1, last_day=1),
        address_velocity=Velocity(last_hour=3, last_day=3),
    )
    reason = risk.velocity_hour(make_order(), history, CONFIG)
    assert reason is not None
    assert reason.points == WEIGHTS["velocity_hour"]
    assert "shipping address" in reason.message and "3 earlier" in reason.message


def test_one_earlier_order_in_the_hour_is_a_small_signal() -> None:
    history = make_history(customer_velocity=Velocity(last_hour=1, last_day=1))
    assessment = score_order(make_order(), history, CONFIG)
    assert codes(make_order(), history) == {"velocity_hour"}
    assert 0 < assessment.score < CONFIG.flag_threshold


def test_velocity_day_allows_a_couple_of_orders() -> None:
    assert (
        risk.velocity_day(
            make_order(), make_history(email_velocity=Velocity(last_hour=0, last_day=2)), CONFIG
        )
        is None
    )
    reason = risk.velocity_day(
        make_order(), make_history(email_velocity=Velocity(last_hour=0, last_day=6)), CONFIG
    )
    assert (
        reason is not None
        and reason.points == WEIGHTS["velocity_day"]
        and "e-mail" in reason.message
    )


def test_a_burst_of_orders_is_flagged() -> None:
    burst = Velocity(last_hour=4, last_day=4)
    history = make_history(customer_velocity=burst, email_velocity=burst)
    assert score_order(make_order(), history, CONFIG).flagged


def test_payment_reused() -> None:
    history = make_history(payment_velocity=Velocity(last_hour=0, last_day=1))
    reason = risk.payment_reused(make_order(txn="pay_dup"), history, CONFIG)
    assert reason is not None and "already used by 1 other" in reason.message
    assert "pay_dup" not in reason.message
    assert risk.payment_reused(make_order(), make_history(), CONFIG) is None


def test_velocity_is_an_error_when_the_hour_exceeds_the_day() -> None:
    with pytest.raises(ValueError, match="cannot exceed"):
        Velocity(last_hour=2, last_day=1)


# ---- quantity ----


def test_quantity_far_above_the_skus_usual() -> None:
    reason = risk.unusual_quantity(
        make_order(items=[("SKU-RED-MUG", 60, "12.50")]), make_history(), CONFIG
    )
    assert reason is not None
    assert reason.points == WEIGHTS["quantity_unusual"]
    assert "60 x SKU-RED-MUG" in reason.message


def test_quantity_a_little_above_usual_is_fine() -> None:
    assert (
        risk.unusual_quantity(
            make_order(items=[("SKU-RED-MUG", 8, "12.50")]),
            make_history(customer_max_quantity=1),
            CONFIG,
        )
        is None
    )


def test_quantity_of_a_sku_without_enough_history_is_not_judged() -> None:
    thin = make_history(
        sku_usage={"SKU-RED-MUG": SkuUsage(lines=5, median_quantity=1.0, p95_quantity=1.0)}
    )
    assert (
        risk.unusual_quantity(make_order(items=[("SKU-RED-MUG", 500, "12.50")]), thin, CONFIG)
        is None
    )
    unknown = make_history(sku_usage={})
    assert (
        risk.unusual_quantity(make_order(items=[("SKU-RED-MUG", 500, "12.50")]), unknown, CONFIG)
        is None
    )


def test_a_wholesaler_buying_their_usual_volume_is_fine() -> None:
    wholesaler = make_history(customer_max_quantity=200)
    assert (
        risk.unusual_quantity(make_order(items=[("SKU-RED-MUG", 144, "12.50")]), wholesaler, CONFIG)
        is None
    )
    assert (
        risk.unusual_quantity(make_order(items=[("SKU-RED-MUG", 600, "12.50")]), wholesaler, CONFIG)
        is not None
    )


# ---- block lists ----


def test_block_listed_email_exact_or_domain_case_insensitive() -> None:
    config = RiskConfig.from_lists(emails=["Bad@Example.com", "@fraud.shop"])
    assert "email_blocked" in codes(make_order(email="bad@example.com"), make_history(), config)
    assert "email_blocked" in codes(make_order(email="x@fraud.shop"), make_history(), config)
    assert "email_blocked" not in codes(
        make_order(email="good@example.com"), make_history(), config
    )
    assert score_order(make_order(email="bad@example.com"), make_history(), config).flagged


def test_block_listed_postal_code_plain_or_with_country() -> None:
    plain = RiskConfig.from_lists(postal_codes=["10115"])
    with_country = RiskConfig.from_lists(postal_codes=["de:10 115"])
    other_country = RiskConfig.from_lists(postal_codes=["AT:10115"])
    assert "postal_code_blocked" in codes(make_order(), make_history(), plain)
    assert "postal_code_blocked" in codes(make_order(), make_history(), with_country)
    assert "postal_code_blocked" not in codes(make_order(), make_history(), other_country)
    abroad = Address(name="A", line1="x 1", city="Wien", postal_code="1010", country="AT")
    billing_only = RiskConfig.from_lists(postal_codes=["AT:1010"])
    reason = risk.blocked_postal_code(make_order(billing=abroad), make_history(), billing_only)
    assert reason is not None and "billing address (AT)" in reason.message
    assert "1010" not in reason.message


def test_reasons_name_the_signal_never_the_customers_data() -> None:
    # Reasons are kept in the workflow's history and shown to staff: no personal data.
    elsewhere = Address(
        name="Zoe Quux", line1="9 Dock Rd", city="Hamburg", postal_code="20095", country="DE"
    )
    abroad = Address(
        name="Zoe Quux", line1="Calle Mayor 3", city="Palma", postal_code="07001", country="ES"
    )
    order = make_order(email="zoe@quux.example", shipping=elsewhere, billing=abroad)
    config = RiskConfig.from_lists(emails=["zoe@quux.example"], postal_codes=["20095", "07001"])
    history = make_history(customer_orders_to_address=0)
    reasons = {r.code: r.message for r in score_order(order, history, config).reasons}
    assert {"email_blocked", "postal_code_blocked", "country_mismatch"} <= set(reasons)
    assert "new_shipping_address" in reasons
    for message in reasons.values():
        for personal in ("zoe", "quux", "Dock", "Calle", "Hamburg", "Palma", "20095", "07001"):
            assert personal.lower() not in message.lower(), message


# ---- configuration ----


def test_config_from_settings_overrides_defaults() -> None:
    settings = Settings(
        risk_flag_threshold=70,
        risk_weights={"country_mismatch": 55},
        risk_block_list_emails=["x@y.de"],
        risk_block_list_postal_codes=["99999"],
    )
    config = RiskConfig.from_settings(settings)
    assert config.flag_threshold == 70
    assert config.weight("country_mismatch") == 55
    assert config.weight("payment_failed") == WEIGHTS["payment_failed"]
    assert config.is_email_blocked("X@y.de")
    assert config.is_postal_code_blocked("DE", "99999")


def test_config_refuses_unknown_signal_codes() -> None:
    with pytest.raises(ValueError, match="unknown risk signal"):
        RiskConfig(weights={"cuntry_mismatch": 10})


def test_a_zero_weight_silences_a_signal() -> None:
    config = RiskConfig(weights={**WEIGHTS, "payment_failed": 0})
    assert score_order(make_order(status="failed"), make_history(), config).score == 0


def test_flagged_exactly_at_the_threshold() -> None:
    order = make_order(status="failed")
    points = WEIGHTS["payment_failed"]
    assert score_order(order, make_history(), RiskConfig(flag_threshold=points)).flagged
    assert not score_order(order, make_history(), RiskConfig(flag_threshold=points + 0.01)).flagged


def test_reasons_are_sorted_by_points_and_sum_to_the_score() -> None:
    order = make_order(status="pending", billing=HOME.model_copy(update={"country": "AT"}))
    assessment = score_order(order, make_history(), CONFIG)
    points = [r.points for r in assessment.reasons]
    assert points == sorted(points, reverse=True)
    assert assessment.score == pytest.approx(sum(points))


# ---- properties ----

SKUS = ["SKU-RED-MUG", "SKU-GRINDER", "SKU-TEA"]


@st.composite
def velocities(draw: st.DrawFn) -> Velocity:
    day = draw(st.integers(0, 30))
    return Velocity(last_hour=draw(st.integers(0, day)), last_day=day)


@st.composite
def distributions(draw: st.DrawFn) -> AmountDistribution:
    count = draw(st.integers(0, 2000))
    if count == 0:
        return AmountDistribution()
    values = sorted(draw(st.lists(st.floats(0.01, 1e7), min_size=5, max_size=5)))
    return AmountDistribution(
        count=count,
        median=values[0],
        mad=draw(st.floats(0, 1e6)),
        p90=values[2],
        p95=values[3],
        p99=values[4],
    )


@st.composite
def histories(draw: st.DrawFn) -> RiskHistory:
    count = draw(st.integers(0, 500))
    return RiskHistory(
        as_of=AS_OF,
        customer_order_count=count,
        customer_first_order_at=(
            AS_OF - timedelta(hours=draw(st.integers(1, 24 * 800))) if count else None
        ),
        customer_orders_to_address=draw(st.integers(0, count)),
        customer_amounts=draw(distributions()),
        customer_max_quantity=draw(st.none() | st.integers(0, 100_000)),
        shop_amounts=draw(distributions()),
        customer_velocity=draw(velocities()),
        email_velocity=draw(velocities()),
        address_velocity=draw(velocities()),
        payment_velocity=draw(velocities()),
        sku_usage={
            sku: SkuUsage(
                lines=draw(st.integers(0, 1000)),
                median_quantity=draw(st.floats(0, 1000)),
                p95_quantity=draw(st.floats(0, 5000)),
            )
            for sku in SKUS
        },
    )


@st.composite
def orders(draw: st.DrawFn) -> Order:
    skus = draw(st.lists(st.sampled_from(SKUS), min_size=1, max_size=3, unique=True))
    items = [
        (
            sku,
            draw(st.integers(1, 30_000)),
            str(draw(st.decimals(Decimal("0.01"), Decimal("99.99"), places=2))),
        )
        for sku in skus
    ]
    billing = draw(st.sampled_from([None, HOME, HOME.model_copy(update={"country": "GB"})]))
    return make_order(
        items=items,
        status=draw(st.sampled_from(["captured", "authorized", "pending", "failed"])),
        billing=billing,
    )


@given(orders(), histories())
@settings(max_examples=300, deadline=None)
def test_score_is_within_0_and_100(order: Order, history: RiskHistory) -> None:
    assessment = score_order(order, history, CONFIG)
    assert 0 <= assessment.score <= 100
    assert assessment.score == pytest.approx(min(100.0, sum(r.points for r in assessment.reasons)))
    assert assessment.flagged == (assessment.score >= CONFIG.flag_threshold)
    assert all(r.points > 0 and r.message for r in assessment.reasons)


@given(orders(), histories())
@settings(max_examples=200, deadline=None)
def test_a_block_listed_email_never_lowers_the_score(order: Order, history: RiskHistory) -> None:
    config = RiskConfig.from_lists(emails=[order.customer.email])
    assert score_order(order, history, config).score >= score_order(order, history, CONFIG).score
    assert score_order(order, history, config).flagged


@given(orders(), histories())
@settings(max_examples=200, deadline=None)
def test_failing_the_payment_never_lowers_the_score(order: Order, history: RiskHistory) -> None:
    failed = order.model_copy(
        update={"payment": order.payment.model_copy(update={"status": "failed"})}
    )
    assert score_order(failed, history, CONFIG).score >= score_order(order, history, CONFIG).score


@given(
    orders(),
    histories(),
    st.sampled_from(["customer", "email", "address", "payment"]),
    st.integers(0, 10),
    st.integers(0, 10),
)
@settings(max_examples=300, deadline=None)
def test_more_velocity_never_lowers_the_score(
    order: Order, history: RiskHistory, key: str, more_hour: int, more_day: int
) -> None:
    field = f"{key}_velocity"
    before: Velocity = getattr(history, field)
    after = Velocity(
        last_hour=before.last_hour + more_hour, last_day=before.last_day + more_hour + more_day
    )
    busier = history.model_copy(update={field: after})
    assert score_order(order, busier, CONFIG).score >= score_order(order, history, CONFIG).score


@given(orders(), histories())
@settings(max_examples=100, deadline=None)
def test_scoring_is_deterministic(order: Order, history: RiskHistory) -> None:
    assert score_order(order, history, CONFIG) == score_order(order, history, CONFIG)
