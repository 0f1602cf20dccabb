"""Labelled synthetic orders of a coffee and kitchen web shop: input of the risk evaluation.

Shoppers come in segments: occasional shoppers (a small basket every month or two), loyal
regulars (their favourite consumables every week or so), wholesale buyers (cafés and offices
buying dozens of units on invoice) and new customers arriving every day, who then stay on as
occasional shoppers. Order volume follows the week (Sunday evening peaks), the summer lull
and the Black-Friday-to-Christmas peak.

Normal orders include ones that look unusual but are fine: a regular's occasional big order
(an espresso machine), a wholesaler's large quantities, a traveller shipping to a holiday
address abroad, a gift sent to another address, a new customer's big first order, a second
order a few minutes after the first. Anomalies of each kind the risk review looks for are mixed
in: stolen-card bursts (one new account, or several new accounts to one drop address, or one
replayed payment reference), new accounts with foreign billing and high value, huge
quantities, failed payments, block-listed e-mails and postal codes, and account takeovers
(an established account suddenly buying expensive goods for a new address).

Each order is order JSON of the storefront contract, one per line; `orders.jsonl` lines also carry `anomalous`
(the label) and `scenario` (what the generator made: an anomaly kind or a normal case).
`history.jsonl` is the earlier period without labels; `block_list.json` holds the shop's
block lists. Everything comes from one seeded numpy Generator: a seed always gives the same data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from orderflow.models import Address, Customer, Order, OrderItem, Payment

HISTORY_START = date(2026, 7, 1)
HISTORY_DAYS = 123
ORDER_DAYS = 30


@dataclass(frozen=True)
class Product:
    sku: str
    price: Decimal
    popularity: float
    # Units a wholesale buyer takes per line (low, high); None: not a wholesale item.
    bulk: tuple[int, int] | None = None
    # Resold easily: what card fraud and account takeovers go for.
    resale: bool = False


def _p(sku: str, price: str, popularity: float, **kw: Any) -> Product:
    return Product(sku, Decimal(price), popularity, **kw)


CATALOGUE: tuple[Product, ...] = (
    _p("SKU-ESPRESSO-BEANS", "18.90", 10, bulk=(20, 120)),
    _p("SKU-FILTER-COFFEE", "8.50", 8, bulk=(20, 100)),
    _p("SKU-GREEN-TEA", "6.90", 6, bulk=(10, 60)),
    _p("SKU-CHAI", "9.90", 4, bulk=(10, 40)),
    _p("SKU-PAPER-FILTERS", "3.50", 6, bulk=(20, 200)),
    _p("SKU-RED-MUG", "12.50", 5, bulk=(24, 144)),
    _p("SKU-TRAVEL-MUG", "24.00", 3, bulk=(12, 48)),
    _p("SKU-SYRUP-VANILLA", "7.90", 3, bulk=(12, 60)),
    _p("SKU-TEAPOT", "34.00", 1.5),
    _p("SKU-MILK-FROTHER", "39.00", 1.5),
    _p("SKU-POUR-OVER-SET", "45.00", 1.5),
    _p("SKU-KETTLE", "59.00", 1.2),
    _p("SKU-SMART-SCALE", "79.00", 0.8, resale=True),
    _p("SKU-BARISTA-KIT", "89.00", 0.8),
    _p("SKU-GRINDER", "129.00", 0.6, resale=True),
    _p("SKU-GIFT-CARD-100", "100.00", 0.4, resale=True),
    _p("SKU-ESPRESSO-MACHINE", "549.00", 0.3, resale=True),
)
_BY_SKU = {p.sku: p for p in CATALOGUE}
_CONSUMABLES = [p.sku for p in CATALOGUE if p.bulk is not None]
_RESALE = [p.sku for p in CATALOGUE if p.resale]
_BIG_TICKET = ["SKU-ESPRESSO-MACHINE", "SKU-GRINDER", "SKU-BARISTA-KIT", "SKU-KETTLE"]

_HOME_COUNTRIES = (("DE", 0.8), ("AT", 0.1), ("NL", 0.05), ("FR", 0.05))
_CITIES = {
    "DE": ("Berlin", "Hamburg", "München", "Köln", "Leipzig", "Dresden", "Bremen"),
    "AT": ("Wien", "Graz", "Linz", "Salzburg"),
    "NL": ("Amsterdam", "Utrecht", "Rotterdam"),
    "FR": ("Paris", "Lyon", "Lille"),
    "ES": ("Málaga", "Palma", "Valencia"),
    "IT": ("Rimini", "Napoli"),
    "US": ("Newark", "Miami", "Houston"),
    "GB": ("London", "Leeds"),
    "NG": ("Lagos",),
    "RO": ("Bucharest",),
}
_HOLIDAY_COUNTRIES = ("ES", "IT", "FR", "AT", "NL")
_FOREIGN_BILLING = ("US", "GB", "NG", "RO")
_STREETS = (
    "Hauptstr.",
    "Bahnhofstr.",
    "Gartenweg",
    "Lindenallee",
    "Schulstr.",
    "Marktplatz",
    "Rue Victor Hugo",
    "Kerkstraat",
    "Calle Mayor",
    "High Street",
)
_FIRST = tuple(
    "Anna Ben Clara David Emma Felix Greta Hugo Ida Jonas Lena Max Nora Paul Sophie Tim Mia "
    "Noah Lea Elias".split()
)
_LAST = tuple(
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Hoffmann Koch Richter Klein "
    "Wolf Braun Lange Krause".split()
)
_MAIL_DOMAINS = ("mail.de", "web.de", "gmx.net", "posteo.de", "outlook.com", "icloud.com")
_FRAUD_DOMAINS = ("quickmail.top", "tempbox.xyz")
# Hour-of-day weights: a trickle at night, the lunch break, the evening peak.
# fmt: off
_HOURS = np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.5, 2.0, 2.0, 2.2,
                   2.5, 2.2, 2.0, 2.0, 2.2, 2.6, 3.0, 3.5, 3.8, 3.5, 2.5, 1.2])
# fmt: on
_WEEKDAY = (0.95, 0.95, 1.0, 1.0, 1.05, 1.1, 1.25)
# Segment -> normal orders per day before seasonality.
_DAILY_RATES = {"occasional": 30.0, "regular": 35.0, "wholesale": 3.0, "new": 8.0}
# Anomaly kind -> events per day (a burst is one event of several orders).
_ANOMALY_RATES = {
    "velocity_burst": 0.15,
    "country_mismatch": 0.4,
    "huge_quantity": 0.3,
    "failed_payment": 0.5,
    "blocked_email": 0.2,
    "blocked_postal_code": 0.15,
    "account_takeover": 0.4,
}


def season(day: date) -> float:
    """Demand multiplier of a day: weekday pattern, summer lull, holiday peak."""
    factor = _WEEKDAY[day.weekday()]
    if day.month in (7, 8):
        factor *= 0.85
    november = date(day.year, 11, 1)
    thanksgiving = november + timedelta(days=(3 - november.weekday()) % 7 + 21)
    black_friday = thanksgiving + timedelta(days=1)
    if black_friday <= day <= black_friday + timedelta(days=3):
        factor *= 2.5
    elif black_friday - timedelta(days=5) <= day < black_friday:
        factor *= 1.4
    elif day.month == 12 and day.day <= 20:
        factor *= 1.6
    elif day.month == 12 and 21 <= day.day <= 26:
        factor *= 0.6
    return factor


@dataclass
class Shopper:
    id: str
    email: str
    name: str
    segment: str
    home: Address
    favourites: list[str]
    payment_method: str
    # How big a wholesale buyer's orders run, relative to the typical one.
    size: float = 1.0
    orders: int = 0


@dataclass
class Generated:
    order: Order
    anomalous: bool
    scenario: str

    def line(self, *, labelled: bool) -> str:
        data = self.order.model_dump(mode="json", exclude_none=True)
        if labelled:
            data["anomalous"] = self.anomalous
            data["scenario"] = self.scenario
        return json.dumps(data, ensure_ascii=False)


@dataclass
class RiskDataset:
    history: list[Generated]
    orders: list[Generated]
    block_list_emails: list[str]
    block_list_postal_codes: list[str]

    def summary(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for g in self.orders:
            if g.anomalous:
                kinds[g.scenario] = kinds.get(g.scenario, 0) + 1
        return {
            "history_orders": len(self.history),
            "orders": len(self.orders),
            "anomalous": sum(g.anomalous for g in self.orders),
            "anomalies_by_kind": dict(sorted(kinds.items())),
        }


@dataclass
class _Shop:
    """The generator's state: its random source, its shoppers and its counters."""

    rng: np.random.Generator
    shoppers: dict[str, list[Shopper]] = field(default_factory=dict)
    next_customer: int = 1
    next_payment: int = 1
    blocked_emails: list[str] = field(default_factory=list)
    blocked_postals: list[Address] = field(default_factory=list)
    drafts: list[tuple[datetime, Order, bool, str]] = field(default_factory=list)

    # ---- people and places ----

    def pick(self, options: Sequence[Any], weights: Sequence[float] | None = None) -> Any:
        p = None if weights is None else np.asarray(weights, dtype=float) / sum(weights)
        return options[int(self.rng.choice(len(options), p=p))]

    def address(self, name: str, country: str | None = None) -> Address:
        if country is None:
            country = self.pick([c for c, _ in _HOME_COUNTRIES], [w for _, w in _HOME_COUNTRIES])
        digits = {"AT": 4, "NL": 4}.get(country, 5)
        postal = str(int(self.rng.integers(10 ** (digits - 1), 10**digits)))
        if country == "NL":
            postal += " " + "".join(self.pick("ABCDEFGHJKLMNPRSTUVWXZ") for _ in range(2))
        if country in ("US", "GB", "NG", "RO"):
            postal = f"{country}{postal}"
        return Address(
            name=name,
            line1=f"{self.pick(_STREETS)} {int(self.rng.integers(1, 180))}",
            city=self.pick(_CITIES[country]),
            postal_code=postal,
            country=country,
        )

    def shopper(self, segment: str, *, email_domain: str | None = None) -> Shopper:
        number = self.next_customer
        self.next_customer += 1
        first, last = self.pick(_FIRST), self.pick(_LAST)
        name = f"{first} {last}"
        if segment == "wholesale":
            name = f"{last} {self.pick(('Café', 'Büro', 'Kantine', 'Hotel'))} GmbH"
        local = f"{first}.{last}".lower().translate(str.maketrans("äöüß", "aous"))
        email = f"{local}{number}@{email_domain or self.pick(_MAIL_DOMAINS)}"
        favourites = [
            str(sku)
            for sku in self.rng.choice(
                _CONSUMABLES, size=int(self.rng.integers(3, 6)), replace=False
            )
        ]
        method = self.pick(
            ("card", "paypal", "wallet", "bank_transfer", "invoice"), (55, 20, 10, 8, 7)
        )
        if segment == "wholesale":
            method = self.pick(("invoice", "bank_transfer", "card"), (70, 20, 10))
        return Shopper(
            id=f"C-{number:06d}",
            email=email,
            name=name,
            segment=segment,
            home=self.address(name),
            favourites=favourites,
            payment_method=method,
            size=float(self.rng.uniform(0.5, 2.0)) if segment == "wholesale" else 1.0,
        )

    def established(self) -> Shopper:
        """A shopper with a few orders behind them (for takeovers and lookalikes)."""
        pool = [s for s in self.shoppers["regular"] + self.shoppers["occasional"] if s.orders >= 3]
        return self.pick(pool) if pool else self.pick(self.shoppers["regular"])

    # ---- baskets ----

    def quantity(self, sku: str) -> int:
        q = int(self.pick((1, 2, 3, 4), (78, 15, 5, 2)))
        return q if _BY_SKU[sku].bulk is not None else min(q, 2)

    def basket(self, shopper: Shopper) -> dict[str, int]:
        if shopper.segment == "wholesale":
            lines = int(self.rng.integers(2, 6))
            skus = self.rng.choice(_CONSUMABLES, size=lines, replace=False)
            scale = shopper.size
            basket: dict[str, int] = {}
            for sku in skus:
                low, high = _BY_SKU[str(sku)].bulk or (1, 1)
                basket[str(sku)] = max(low, int(self.rng.integers(low, high + 1) * scale))
            return basket
        if shopper.segment == "regular":
            lines = int(self.pick((1, 2, 3, 4), (30, 35, 25, 10)))
            pool = shopper.favourites + [p.sku for p in CATALOGUE[:12]]
            weights = [6.0] * len(shopper.favourites) + [p.popularity for p in CATALOGUE[:12]]
        else:
            lines = int(self.pick((1, 2, 3, 4), (50, 30, 15, 5)))
            pool = [p.sku for p in CATALOGUE]
            weights = [p.popularity for p in CATALOGUE]
        basket = {}
        while len(basket) < min(lines, len(set(pool))):
            sku = self.pick(pool, weights)
            basket.setdefault(sku, self.quantity(sku))
        return basket

    def big_basket(self) -> dict[str, int]:
        basket = {self.pick(_BIG_TICKET, (2, 3, 2, 3)): 1}
        for _ in range(int(self.rng.integers(1, 4))):
            sku = self.pick([p.sku for p in CATALOGUE[:11]])
            basket.setdefault(sku, self.quantity(sku))
        return basket

    def resale_basket(self, low: float, high: float) -> dict[str, int]:
        """Expensive, easily resold goods worth roughly between `low` and `high`."""
        target = float(self.rng.uniform(low, high))
        basket: dict[str, int] = {}
        value = 0.0
        while value < target and len(basket) < 4:
            sku = self.pick(_RESALE)
            if sku in basket:
                continue
            price = float(_BY_SKU[sku].price)
            qty = max(1, min(3, int((target - value) // price)))
            basket[sku] = qty
            value += price * qty
        return basket

    # ---- orders ----

    def payment(
        self,
        method: str,
        total: Decimal,
        status: str | None = None,
        at: datetime | None = None,
    ) -> Payment:
        number = self.next_payment
        self.next_payment += 1
        if status is None:
            status = {
                "card": self.pick(("captured", "authorized"), (85, 15)),
                "bank_transfer": "pending",
                "invoice": "authorized",
            }.get(method, "captured")
        return Payment(
            method=method,  # type: ignore[arg-type]
            transaction_id=f"pay_{number:07d}{int(self.rng.integers(0, 16**4)):04x}",
            amount=total,
            status=status,  # type: ignore[arg-type]
            # An authorisation lasts a week from checkout, as at the PSP.
            authorization_expires_at=(
                (at or datetime.now(UTC)) + timedelta(days=7) if status == "authorized" else None
            ),
        )

    def place(
        self,
        at: datetime,
        shopper: Shopper,
        basket: dict[str, int],
        *,
        anomalous: bool = False,
        scenario: str = "normal",
        shipping: Address | None = None,
        billing: Address | None = None,
        payment_status: str | None = None,
        payment: Payment | None = None,
        method: str | None = None,
    ) -> Order:
        items = [
            OrderItem(sku=sku, quantity=qty, unit_price=_BY_SKU[sku].price)
            for sku, qty in basket.items()
        ]
        total = sum((i.unit_price * i.quantity for i in items), Decimal("0.00"))
        if payment is None:
            payment = self.payment(method or shopper.payment_method, total, payment_status, at)
        else:
            payment = payment.model_copy(update={"amount": total})
        order = Order(
            order_id=f"draft-{len(self.drafts)}",
            channel=self.pick(("web", "mobile", "marketplace"), (60, 30, 10)),
            customer=Customer(id=shopper.id, email=shopper.email, name=shopper.name),
            items=items,
            currency="EUR",
            shipping_address=shipping or shopper.home,
            billing_address=billing,
            payment=payment,
            service_level=self.pick(("standard", "express"), (85, 15)),
            placed_at=at,
        )
        shopper.orders += 1
        self.drafts.append((at, order, anomalous, scenario))
        return order

    def moment(self, day: date) -> datetime:
        hour = int(self.rng.choice(24, p=_HOURS / _HOURS.sum()))
        second = int(self.rng.integers(0, 3600))
        return datetime.combine(day, time(hour), tzinfo=UTC) + timedelta(seconds=second)

    def normal_order(self, day: date, segment: str) -> None:
        at = self.moment(day)
        if segment == "new":
            shopper = self.shopper("occasional")
            self.shoppers["occasional"].append(shopper)
            if self.rng.random() < 0.08:
                self.place(at, shopper, self.big_basket(), scenario="new_big_first_order")
            else:
                self.place(at, shopper, self.basket(shopper))
            return
        shopper = self.pick(self.shoppers[segment])
        if segment == "wholesale":
            self.place(at, shopper, self.basket(shopper), scenario="wholesale")
            return
        roll = self.rng.random()
        if segment == "regular" and roll < 0.04:
            self.place(at, shopper, self.big_basket(), scenario="regular_big_order")
        elif roll < 0.07:
            abroad = self.address(shopper.name, self.pick(_HOLIDAY_COUNTRIES))
            if abroad.country == shopper.home.country:
                abroad = self.address(shopper.name, "ES")
            self.place(
                at,
                shopper,
                self.basket(shopper),
                scenario="traveller",
                shipping=abroad,
                billing=shopper.home,
            )
        elif roll < 0.11:
            gift = self.address(self.pick(_FIRST) + " " + self.pick(_LAST), shopper.home.country)
            self.place(
                at,
                shopper,
                self.basket(shopper),
                scenario="gift_to_other_address",
                shipping=gift,
                billing=shopper.home,
            )
        elif roll < 0.13:
            self.place(at, shopper, self.basket(shopper))
            later = at + timedelta(minutes=int(self.rng.integers(3, 50)))
            self.place(later, shopper, self.basket(shopper), scenario="repeat_order")
        else:
            self.place(at, shopper, self.basket(shopper))

    def anomaly(self, day: date, kind: str) -> None:
        at = self.moment(day)
        if kind == "velocity_burst":
            variant = self.pick(("one_account", "many_accounts", "replayed_payment"))
            drop = self.address("Paket Station")
            fraudster = self.shopper("fraud")
            payment: Payment | None = None
            for _ in range(int(self.rng.integers(3, 7))):
                if variant == "many_accounts":
                    fraudster = self.shopper("fraud")
                basket = self.resale_basket(150, 700)
                if variant == "replayed_payment" and payment is None:
                    payment = self.payment("card", Decimal("0.00"), "captured")
                self.place(
                    at,
                    fraudster,
                    basket,
                    anomalous=True,
                    scenario=kind,
                    shipping=drop,
                    method="card",
                    payment_status="captured",
                    payment=payment if variant == "replayed_payment" else None,
                )
                at += timedelta(minutes=int(self.rng.integers(2, 20)))
        elif kind == "country_mismatch":
            fraudster = self.shopper("fraud")
            billing = self.address(fraudster.name, self.pick(_FOREIGN_BILLING))
            self.place(
                at,
                fraudster,
                self.resale_basket(300, 1500),
                anomalous=True,
                scenario=kind,
                billing=billing,
                method="card",
                payment_status="captured",
            )
        elif kind == "huge_quantity":
            shopper = self.pick(self.shoppers["occasional"])
            sku = self.pick([*_RESALE, "SKU-TEAPOT", "SKU-KETTLE", "SKU-MILK-FROTHER"])
            price = float(_BY_SKU[sku].price)
            quantity = int(self.rng.integers(max(8, int(600 / price)), max(12, int(6000 / price))))
            self.place(at, shopper, {sku: min(quantity, 400)}, anomalous=True, scenario=kind)
        elif kind == "failed_payment":
            segment = self.pick(("occasional", "regular", "new"), (45, 35, 20))
            shopper = (
                self.shopper("occasional")
                if segment == "new"
                else self.pick(self.shoppers[segment])
            )
            self.place(
                at,
                shopper,
                self.basket(shopper),
                anomalous=True,
                scenario=kind,
                method="card",
                payment_status="failed",
            )
        elif kind == "blocked_email":
            email = self.pick(self.blocked_emails)
            fraudster = self.shopper("fraud")
            if email.startswith("@"):
                email = fraudster.email.rpartition("@")[0] + email
            fraudster.email = email
            self.place(at, fraudster, self.basket(fraudster), anomalous=True, scenario=kind)
        elif kind == "blocked_postal_code":
            fraudster = self.shopper("fraud")
            self.place(
                at,
                fraudster,
                self.basket(fraudster),
                anomalous=True,
                scenario=kind,
                shipping=self.pick(self.blocked_postals).model_copy(
                    update={"name": fraudster.name}
                ),
            )
        elif kind == "account_takeover":
            victim = self.established()
            if self.rng.random() < 0.6:
                drop = self.address("Paket Station", self.pick((*_HOLIDAY_COUNTRIES, "GB")))
            else:
                drop = self.address("Paket Station", victim.home.country)
            self.place(
                at,
                victim,
                self.resale_basket(350, 1500),
                anomalous=True,
                scenario=kind,
                shipping=drop,
                billing=victim.home,
                method="card",
                payment_status="captured",
            )
        else:
            raise ValueError(f"unknown anomaly kind {kind}")


def generate_risk_orders(
    *,
    seed: int = 7,
    start: date = HISTORY_START,
    history_days: int = HISTORY_DAYS,
    order_days: int = ORDER_DAYS,
    scale: float = 1.0,
) -> RiskDataset:
    """History and labelled later orders; `scale` multiplies every daily rate."""
    if history_days < 1 or order_days < 1:
        raise ValueError("history_days and order_days must be at least 1")
    if scale <= 0:
        raise ValueError("scale must be positive")
    shop = _Shop(rng=np.random.default_rng(seed))
    population = {"occasional": 1500, "regular": 220, "wholesale": 12}
    for segment, count in population.items():
        shop.shoppers[segment] = [
            shop.shopper(segment) for _ in range(max(3, int(count * min(1.0, scale))))
        ]
    shop.blocked_emails = [shop.shopper("fraud").email for _ in range(8)]
    shop.blocked_emails += [f"@{domain}" for domain in _FRAUD_DOMAINS]
    shop.blocked_postals = [shop.address("Paket Station", "DE") for _ in range(3)]

    end = start + timedelta(days=history_days + order_days)
    day = start
    while day < end:
        factor = season(day)
        for segment, rate in _DAILY_RATES.items():
            for _ in range(int(shop.rng.poisson(rate * factor * scale))):
                shop.normal_order(day, segment)
        for kind, rate in _ANOMALY_RATES.items():
            for _ in range(int(shop.rng.poisson(rate * scale))):
                shop.anomaly(day, kind)
        day += timedelta(days=1)

    split = datetime.combine(start + timedelta(days=history_days), time(0), tzinfo=UTC)
    shop.drafts.sort(key=lambda d: d[0])
    history: list[Generated] = []
    orders: list[Generated] = []
    for number, (at, draft, anomalous, scenario) in enumerate(shop.drafts, start=1):
        order = draft.model_copy(update={"order_id": f"R-{number:06d}"})
        (history if at < split else orders).append(Generated(order, anomalous, scenario))
    postal_codes = [f"{a.country}:{a.postal_code}" for a in shop.blocked_postals]
    return RiskDataset(history, orders, shop.blocked_emails, postal_codes)


def write_risk_orders(out_dir: Path, **options: Any) -> dict[str, Any]:
    """Write `history.jsonl`, `orders.jsonl` and `block_list.json` to `out_dir`."""
    dataset = generate_risk_orders(**options)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "history.jsonl").write_text(
        "".join(g.line(labelled=False) + "\n" for g in dataset.history), encoding="utf-8"
    )
    (out_dir / "orders.jsonl").write_text(
        "".join(g.line(labelled=True) + "\n" for g in dataset.orders), encoding="utf-8"
    )
    (out_dir / "block_list.json").write_text(
        json.dumps(
            {"emails": dataset.block_list_emails, "postal_codes": dataset.block_list_postal_codes},
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return dataset.summary()
