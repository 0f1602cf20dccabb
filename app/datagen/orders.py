"""Realistic demo orders against the demo catalogue, for `up --demo` and `load`."""

from __future__ import annotations

import random
from decimal import Decimal

from orderflow.models import Order

# sku -> unit price, as in the demo catalogue
CATALOGUE_PRICES: dict[str, str] = {
    "SKU-RED-MUG": "12.50",
    "SKU-BLUE-MUG": "12.50",
    "SKU-TEA-TIN": "8.90",
    "SKU-COFFEE-1KG": "24.00",
    "SKU-FRENCH-PRESS": "39.00",
    "SKU-KETTLE": "59.00",
    "SKU-GRINDER": "129.00",
    "SKU-TEAPOT": "45.00",
}
_CITIES = (
    ("DE", "Berlin", "10115"),
    ("DE", "Hamburg", "20095"),
    ("DE", "Munich", "80331"),
    ("AT", "Vienna", "1010"),
    ("FR", "Paris", "75001"),
    ("NL", "Amsterdam", "1011"),
)
# Share of demo orders whose payment failed: they are flagged for a reviewer.
FAILED_PAYMENT_SHARE = 0.04
_NAMES = ("Ann Lee", "Ben Okafor", "Chloé Martin", "Dara Novak", "Emil Berg", "Fatima Zahra")


def demo_order(rng: random.Random, order_id: str, *, customers: int = 200) -> Order:
    """One plausible order: a known customer, 1–3 lines, mostly domestic, a captured payment
    (and now and then a failed one, so the risk team has something to review)."""
    n = rng.randrange(customers)
    name = _NAMES[n % len(_NAMES)]
    country, city, postal = _CITIES[0] if rng.random() < 0.7 else rng.choice(_CITIES)
    skus = rng.sample(sorted(CATALOGUE_PRICES), k=rng.choice((1, 1, 2, 3)))
    lines = [(sku, rng.choice((1, 1, 1, 2, 3))) for sku in skus]
    items = [
        {"sku": sku, "quantity": qty, "unit_price": CATALOGUE_PRICES[sku]} for sku, qty in lines
    ]
    total = sum((Decimal(CATALOGUE_PRICES[sku]) * qty for sku, qty in lines), Decimal("0"))
    address = {
        "name": name,
        "line1": f"{n + 1} Demo Street",
        "city": city,
        "postal_code": postal,
        "country": country,
    }
    return Order.model_validate(
        {
            "order_id": order_id,
            "channel": rng.choice(("web", "web", "mobile", "marketplace")),
            "customer": {"id": f"C-{n:04d}", "email": f"customer{n}@example.com", "name": name},
            "items": items,
            "currency": "EUR",
            "shipping_address": address,
            "billing_address": None,
            "payment": {
                "method": "card",
                "transaction_id": f"pay_{order_id}",
                "amount": str(total),
                "status": "failed" if rng.random() < FAILED_PAYMENT_SHARE else "captured",
            },
            "promo_code": "WINTER10" if rng.random() < 0.1 else None,
            "service_level": "express" if rng.random() < 0.2 else "standard",
        }
    )
