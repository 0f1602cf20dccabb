"""Order classification: which kind of order this is and which department owns it.

The rules are data (an ordered table, first match wins) over facts derived from the order
and the catalogue; thresholds come from settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from orderflow.models import Classification, Order


@dataclass(frozen=True)
class OrderFacts:
    has_pre_sale_item: bool
    total_quantity: int
    total: Decimal
    cross_border: bool
    has_promo_code: bool


@dataclass(frozen=True)
class ClassificationRule:
    name: str
    order_type: str
    department: str
    applies: Callable[[OrderFacts, ClassificationThresholds], bool]


@dataclass(frozen=True)
class ClassificationThresholds:
    bulk_quantity: int
    bulk_value: Decimal


RULES: tuple[ClassificationRule, ...] = (
    ClassificationRule("pre-sale item", "pre_sale", "purchasing", lambda f, t: f.has_pre_sale_item),
    ClassificationRule(
        "bulk quantity or value",
        "bulk",
        "sales",
        lambda f, t: f.total_quantity >= t.bulk_quantity or f.total >= t.bulk_value,
    ),
    ClassificationRule("ships abroad", "cross_border", "logistics", lambda f, t: f.cross_border),
    ClassificationRule("promo code", "promotional", "warehouse", lambda f, t: f.has_promo_code),
    ClassificationRule("default", "normal", "warehouse", lambda f, t: True),
)


def order_facts(order: Order, *, pre_sale_skus: set[str], shop_country: str) -> OrderFacts:
    return OrderFacts(
        has_pre_sale_item=any(item.sku in pre_sale_skus for item in order.items),
        total_quantity=order.total_quantity,
        total=order.total,
        cross_border=order.shipping_address.country != shop_country,
        has_promo_code=bool(order.promo_code),
    )


def classify(facts: OrderFacts, thresholds: ClassificationThresholds) -> Classification:
    for rule in RULES:
        if rule.applies(facts, thresholds):
            return Classification(
                order_type=rule.order_type,  # type: ignore[arg-type]
                department=rule.department,
                rule=rule.name,
            )
    raise AssertionError("the default rule always applies")
