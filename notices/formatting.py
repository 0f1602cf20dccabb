"""Locale-aware formatting of what notices show: money with its currency, dates, countries.

The templates call these as filters (`{{ total|money(currency) }}`, `{{ when|date }}`,
`{{ address.country|country }}`); each locale's environment binds them to its locale, so a
German mail reads `1.234,50 €` and `25. November 2026`, a Chinese one `€1,234.50` and
`2026年11月25日`. CLDR data comes from Babel.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import cache

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_currency


@cache  # a handful of locales, parsed once each
def babel_locale(locale: str) -> Locale:
    """`zh-CN` (the contract's BCP 47 tag) as Babel's `zh_Hans_CN`."""
    return Locale.parse(locale, sep="-")


def money(amount: Decimal | int | float | str, currency: str, locale: str) -> str:
    """An amount with its currency, as the locale writes it (digits per the currency)."""
    return format_currency(Decimal(str(amount)), currency, locale=babel_locale(locale))


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, str):
        # A context may come from JSON (a preview, a test): ISO 8601 with or without a time.
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    # The calendar day as stored: expected deliveries are whole days at the carrier.
    return value.date() if isinstance(value, datetime) else value


def long_date(value: date | datetime | str, locale: str) -> str:
    """`November 25, 2026` · `25. November 2026` · `2026年11月25日`."""
    return format_date(_as_date(value), format="long", locale=babel_locale(locale))


def day(value: date | datetime | str, locale: str) -> str:
    """With the weekday, for a day someone plans around (an expected delivery)."""
    return format_date(_as_date(value), format="full", locale=babel_locale(locale))


def country(code: str, locale: str) -> str:
    """An ISO 3166 country code as the country's name in the locale (the code if unknown)."""
    name: str | None = babel_locale(locale).territories.get(code.upper())
    return name or code
