"""Mail content: every kind renders from its template in every locale, English is the
fallback, the facts a customer needs are in the mail, customer text is escaped in HTML, and
no sentence of a notice is written in Python any more."""

from __future__ import annotations

import ast
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from babel.messages.pofile import read_po, write_po
from jinja2 import UndefinedError

from notices import LOCALES, Composer, compose, kinds, resolve_locale
from notices.__main__ import problems
from notices.samples import CUSTOMER, DEPARTMENT, ORDER, SAMPLES, SHIPMENT
from notices.translations import LOCALE_DIR, catalogue_path

ROOT = Path(__file__).resolve().parents[2]
ALL_KINDS = [(channel, kind) for channel, samples in SAMPLES.items() for kind in samples]


def test_every_template_has_a_sample_and_every_sample_a_template() -> None:
    assert set(kinds("email")) == set(CUSTOMER)
    assert set(kinds("department")) == set(DEPARTMENT)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("channel", "kind"), ALL_KINDS, ids=[f"{c}/{k}" for c, k in ALL_KINDS])
def test_every_kind_renders_in_every_locale(channel: Any, kind: str, locale: str) -> None:
    mail = compose(kind, locale, SAMPLES[channel][kind], channel=channel)
    assert mail.locale == locale
    assert mail.subject.strip() and "\n" not in mail.subject
    assert mail.text.strip() and mail.html.strip()
    assert mail.html.lstrip().startswith("<!DOCTYPE html>")
    order_id = SAMPLES[channel][kind]["order_id"]
    if order_id:
        assert order_id in mail.text, "the order id is in every notice about an order"
    if channel == "email":
        # Customer mails link to the order's page, in both parts.
        assert ORDER["order_url"] in mail.text
        assert f'href="{ORDER["order_url"]}"' in mail.html
    else:
        assert "What to do" in mail.text and "What to do" in mail.html


@pytest.mark.parametrize("locale", ["de", "zh-CN"])
@pytest.mark.parametrize("kind", sorted(CUSTOMER))
def test_customer_mails_are_translated(kind: str, locale: str) -> None:
    english = compose(kind, "en", CUSTOMER[kind])
    translated = compose(kind, locale, CUSTOMER[kind])
    assert translated.subject != english.subject
    assert translated.text != english.text
    assert f'<html lang="{locale}">' in translated.html


def test_catalogues_are_complete_and_consistent() -> None:
    """Every msgid of the templates is translated (not fuzzy) in every catalogue, and no
    translation drops or invents a placeholder (`python -m notices check`)."""
    found = [p for locale in LOCALES if locale != "en" for p in problems(locale)]
    assert found == []


@pytest.mark.parametrize(
    ("requested", "resolved"),
    [
        (None, "en"),
        ("", "en"),
        ("en", "en"),
        ("en-GB", "en"),
        ("de", "de"),
        ("de-AT", "de"),
        ("DE", "de"),
        ("zh-CN", "zh-CN"),
        ("zh_cn", "zh-CN"),
        ("zh", "zh-CN"),
        ("fr", "en"),
        ("pt-BR", "en"),
    ],
)
def test_locale_resolution(requested: str | None, resolved: str) -> None:
    assert resolve_locale(requested) == resolved


@pytest.mark.parametrize(("channel", "kind"), ALL_KINDS, ids=[f"{c}/{k}" for c, k in ALL_KINDS])
def test_an_unknown_locale_gets_the_english_mail(channel: Any, kind: str) -> None:
    context = SAMPLES[channel][kind]
    french = compose(kind, "fr", context, channel=channel)
    assert french == compose(kind, "en", context, channel=channel)
    assert french.locale == "en"


def _catalogues_with(tmp_path: Path, locale: str, change: dict[str, str | None]) -> Path:
    """A copy of the catalogues where `locale`'s msgids in `change` get a new translation
    (None: the entry is removed)."""
    shutil.copytree(LOCALE_DIR, tmp_path / "locales")
    path = catalogue_path(locale, tmp_path / "locales")
    with path.open("rb") as po:
        catalog = read_po(po, locale=locale.replace("-", "_"))
    for msgid, string in change.items():
        assert msgid in catalog, msgid
        if string is None:
            catalog.delete(msgid)
        else:
            catalog[msgid].string = string
    with path.open("wb") as po:
        write_po(po, catalog)
    return tmp_path / "locales"


def test_a_string_missing_from_a_catalogue_reads_in_english(tmp_path: Path) -> None:
    catalogues = _catalogues_with(
        tmp_path,
        "de",
        {"Your order %(order_id)s is confirmed": None, "Shipping address": ""},
    )
    mail = Composer(catalogues=catalogues).compose(
        "order_confirmation", "de", CUSTOMER["order_confirmation"]
    )
    assert mail.locale == "de"
    assert mail.subject == "Your order A-1001 is confirmed"
    assert "Shipping address" in mail.text, "an empty translation is missing too"
    # The rest stays German.
    assert "Vielen Dank für Ihre Bestellung" in mail.text
    assert "Gesamtbetrag: 33,90\xa0€" in mail.text


def test_a_broken_translation_falls_back_to_the_whole_english_mail(tmp_path: Path) -> None:
    catalogues = _catalogues_with(
        tmp_path, "de", {"Your order %(order_id)s is confirmed": "Bestellung %(nummer)s"}
    )
    mail = Composer(catalogues=catalogues).compose(
        "order_confirmation", "de", CUSTOMER["order_confirmation"]
    )
    assert mail == compose("order_confirmation", "en", CUSTOMER["order_confirmation"])


def test_a_missing_variable_fails_loudly_in_every_locale() -> None:
    context = {k: v for k, v in CUSTOMER["order_confirmation"].items() if k != "items"}
    for locale in LOCALES:
        with pytest.raises(UndefinedError, match="items"):
            compose("order_confirmation", locale, context)
    with pytest.raises(UndefinedError, match="shortages"):
        compose("backorder_notice", "en", CUSTOMER["order_confirmation"])


def test_compose_owns_channel_and_locale() -> None:
    with pytest.raises(ValueError, match="locale"):
        compose("delivered", "en", {**CUSTOMER["delivered"], "locale": "de"})


def test_the_confirmation_lists_items_total_and_address() -> None:
    mail = compose("order_confirmation", "en", CUSTOMER["order_confirmation"])
    for part in (mail.text, mail.html):
        for item in ORDER["items"]:
            assert item["sku"] in part and item["name"] in part
        assert "€12.50" in part and "€25.00" in part, "unit price and line total"
        assert "€8.90" in part
        assert "€33.90" in part, "total"
        assert "1 Main St" in part and "10115 Berlin" in part and "Germany" in part
        assert "November 25, 2026" in part, "the order date, readable"
    assert "2 × €12.50 = €25.00" in mail.text
    assert "Total: €33.90" in mail.text

    german = compose("order_confirmation", "de", CUSTOMER["order_confirmation"])
    assert "2 × 12,50\xa0€ = 25,00\xa0€" in german.text
    assert "Gesamtbetrag: 33,90\xa0€" in german.text
    assert "Deutschland" in german.text and "25. November 2026" in german.text
    chinese = compose("order_confirmation", "zh-CN", CUSTOMER["order_confirmation"])
    assert "合计：€33.90" in chinese.text and "德国" in chinese.text


def test_money_follows_the_order_currency() -> None:
    context = {**CUSTOMER["order_confirmation"], "currency": "USD"}
    assert "Total: $33.90" in compose("order_confirmation", "en", context).text
    assert "33,90\xa0$" in compose("order_confirmation", "de", context).text
    assert "US$33.90" in compose("order_confirmation", "zh-CN", context).text


@pytest.mark.parametrize("kind", ["shipping_confirmation", "replacement_shipped"])
def test_the_shipping_notice_names_carrier_tracking_number_and_expected_delivery(
    kind: str,
) -> None:
    expected = {
        "en": "Friday, November 27, 2026",
        "de": "Freitag, 27. November 2026",
        "zh-CN": "2026年11月27日星期五",
    }
    for locale, day in expected.items():
        mail = compose(kind, locale, CUSTOMER[kind])
        for part in (mail.text, mail.html):
            assert SHIPMENT["carrier_name"] in part
            assert SHIPMENT["tracking_number"] in part
            assert day in part


def test_delay_and_loss_say_which_parcel() -> None:
    for kind in ("delivery_delayed", "parcel_lost"):
        mail = compose(kind, "en", CUSTOMER[kind])
        assert SHIPMENT["tracking_number"] in mail.text and "DHL Paket" in mail.text


def test_the_backorder_reminder_offers_cancellation_only_when_due() -> None:
    context = CUSTOMER["backorder_reminder"]
    offered = compose("backorder_reminder", "en", {**context, "offer_cancellation": True})
    assert "cancel the order at no cost" in offered.text
    plain = compose("backorder_reminder", "en", {**context, "offer_cancellation": False})
    assert "cancel" not in plain.text.lower()


def test_the_backorder_notice_names_what_is_missing() -> None:
    mail = compose("backorder_notice", "en", CUSTOMER["backorder_notice"])
    assert "1 × Loose-leaf tea tin (SKU-TEA-TIN)" in mail.text
    assert "Red ceramic mug" not in mail.text


def test_closing_mails_say_what_was_refunded() -> None:
    cancelled = CUSTOMER["order_cancelled"]
    mail = compose("order_cancelled", "en", cancelled)
    assert "refunded €33.90" in mail.text and "ordered twice by mistake" in mail.text
    uncharged = compose("order_cancelled", "de", {**cancelled, "refunded": Decimal("0")})
    assert "nichts zu erstatten" in uncharged.text
    lost = compose("order_cancelled", "en", {**cancelled, "cause": "parcel_lost", "reason": None})
    assert "lost on its way" in lost.text and "Reason" not in lost.text
    rejected = compose("order_rejected", "en", CUSTOMER["order_rejected"])
    assert "refunded €33.90" in rejected.text


def test_customer_text_is_escaped_in_html_and_kept_in_text() -> None:
    evil = "<script>alert(1)</script>"
    context = {
        **CUSTOMER["feedback_acknowledged"],
        "customer_name": evil,
        "message": "<b>broken</b> & dented\nsecond line",
    }
    for locale in LOCALES:
        mail = compose("feedback_acknowledged", locale, context)
        assert "<script>" not in mail.html and "<b>" not in mail.html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
        assert "&lt;b&gt;broken&lt;/b&gt; &amp; dented<br>second line" in mail.html
        # The text part is plain text: what the customer typed, as typed.
        assert evil in mail.text and "> <b>broken</b> & dented" in mail.text
    department = compose(
        "feedback_ticket",
        "en",
        {**DEPARTMENT["feedback_ticket"], "message": evil},
        channel="department",
    )
    assert "<script>" not in department.html and evil in department.text


# --- no sentence of a notice in Python -----------------------------------------------------

_NOTICE_CALLS = {"email_customer", "notify_department", "enqueue", "store"}
# What notices are queued through: the repository, and in an activity the claim of its event
# (activities/effects.py), which passes kind and facts on to the repository as they are.
_NOTIFIERS = {"notifications", "claimed"}
# Where notices are queued: the activities, the API routes, the repositories.
_CALLERS = [
    *sorted(p for p in (ROOT / "activities").glob("*.py") if p.name != "effects.py"),
    *sorted((ROOT / "api").rglob("*.py")),
    *sorted((ROOT / "db" / "repositories").glob("*.py")),
]


def _notice_calls(path: Path) -> list[ast.Call]:
    calls = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _NOTICE_CALLS and ast.unparse(node.func.value) in _NOTIFIERS:
                calls.append(node)
    return calls


def _sentences(node: ast.AST) -> list[str]:
    """String constants and f-strings with words in them (three or more)."""
    found = []
    for sub in ast.walk(node):
        if isinstance(sub, ast.JoinedStr):
            text = "".join(str(v.value) for v in sub.values if isinstance(v, ast.Constant))
            if len(text.split()) >= 3:
                found.append(ast.unparse(sub))
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            if len(sub.value.split()) >= 3:
                found.append(sub.value)
    return found


def test_no_activity_writes_subject_or_body() -> None:
    offenders = []
    for path in sorted((ROOT / "activities").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg in ("subject", "body", "body_html", "recipient"):
                        offenders.append(f"{path.name}:{node.lineno}: {keyword.arg}=")
    assert offenders == []


def test_notices_are_queued_by_kind_and_facts_only() -> None:
    """Every call that queues a notice passes a kind and facts, never words."""
    calls = [(path, call) for path in _CALLERS for call in _notice_calls(path)]
    assert len(calls) >= 20, "the scan finds the call sites"
    offenders = []
    for path, call in calls:
        where = f"{path.relative_to(ROOT)}:{call.lineno}"
        for keyword in call.keywords:
            if keyword.arg in ("subject", "body", "mail"):
                offenders.append(f"{where}: {keyword.arg}=")
            if keyword.arg != "key":
                offenders.extend(f"{where}: {s!r}" for s in _sentences(keyword.value))
    # The repository's own plumbing (enqueue calls store, email_customer calls enqueue).
    offenders = [o for o in offenders if not o.startswith("db/repositories/notifications.py")]
    assert offenders == []


def test_every_kind_queued_in_code_has_a_template() -> None:
    channel_of = {"email_customer": "email", "notify_department": "department"}
    missing = []
    for path in _CALLERS:
        for call in _notice_calls(path):
            channel = channel_of.get(getattr(call.func, "attr", ""))
            kind = next((k.value for k in call.keywords if k.arg == "kind"), None)
            if channel is None or kind is None:
                continue
            if isinstance(kind, ast.IfExp):
                names = [kind.body, kind.orelse]
            elif isinstance(kind, ast.JoinedStr):
                # order_{status}: the statuses an order closes with.
                assert ast.unparse(kind) == "f'order_{status.lower()}'"
                names = [ast.Constant("order_cancelled"), ast.Constant("order_rejected")]
            else:
                names = [kind]
            for name in names:
                assert isinstance(name, ast.Constant), ast.unparse(name)
                if str(name.value) not in kinds(channel):  # type: ignore[arg-type]
                    missing.append(f"{path.relative_to(ROOT)}:{call.lineno}: {name.value!r}")
    assert missing == []
