"""The ledger against the PSP's records: each kind of disagreement is found, and agreeing
records, including a refund still on its way, are not reported."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from policies.reconciliation import LedgerFacts, PspFacts, reconcile

D = Decimal
ZERO = D("0.00")


def ledger(**changes: object) -> LedgerFacts:
    base = LedgerFacts(
        order_id="A-1",
        transaction_id="pay_1",
        checkout_status="authorized",
        amount=D("25.00"),
        captured=D("25.00"),
        refunded=ZERO,
        refunding=ZERO,
        voided=False,
        shipped=True,
        operations=1,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def psp(**changes: object) -> PspFacts:
    base = PspFacts(
        transaction_id="pay_1",
        status="captured",
        amount=D("25.00"),
        captured=D("25.00"),
        refunded=ZERO,
        refunding=ZERO,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def kinds(ledger_rows: list[LedgerFacts], psp_rows: list[PspFacts]) -> list[str]:
    return [m.kind for m in reconcile(ledger_rows, psp_rows)]


def test_agreeing_records_have_no_mismatch() -> None:
    assert kinds([ledger()], [psp()]) == []
    # A voided authorisation of an order never shipped.
    voided = ledger(captured=ZERO, voided=True, shipped=False)
    assert kinds([voided], [psp(status="voided", captured=ZERO)]) == []
    # A refund sent and not settled yet at one side, settled at the other, is no mismatch.
    on_its_way = ledger(refunding=D("10.00"))
    assert kinds([on_its_way], [psp(refunded=D("10.00"), status="partially_refunded")]) == []


def test_captured_at_the_psp_but_not_shipped() -> None:
    order = ledger(captured=ZERO, shipped=False)
    found = reconcile([order], [psp()])
    assert [m.kind for m in found] == ["captured_not_shipped", "amount_differs"]
    assert found[0].order_id == "A-1" and found[0].psp == "25.00"


def test_a_captured_order_not_shipped_and_refunded_in_full_is_settled() -> None:
    order = ledger(shipped=False, refunded=D("25.00"))
    assert kinds([order], [psp(refunded=D("25.00"), status="refunded")]) == []


def test_shipped_but_never_captured() -> None:
    order = ledger(captured=ZERO)
    assert kinds([order], [psp(captured=ZERO, status="authorized")]) == ["shipped_not_captured"]
    # Also when the PSP does not list the payment at all.
    assert "shipped_not_captured" in kinds([ledger(captured=ZERO, operations=0)], [])


def test_a_payment_captured_at_checkout_is_not_shipped_not_captured() -> None:
    order = ledger(checkout_status="captured", shipped=False, operations=1)
    assert kinds([order], [psp()]) == []


def test_refund_missing_and_refund_doubled() -> None:
    missing = reconcile([ledger(refunded=D("5.00"))], [psp()])
    assert [(m.kind, m.ledger, m.psp) for m in missing] == [("refund_missing", "5.00", "0.00")]
    doubled = reconcile([ledger(refunded=D("5.00"))], [psp(refunded=D("10.00"))])
    assert [(m.kind, m.ledger, m.psp) for m in doubled] == [("refund_doubled", "5.00", "10.00")]


def test_amounts_that_differ() -> None:
    found = reconcile([ledger(captured=D("20.00"))], [psp()])
    assert [m.kind for m in found] == ["amount_differs"]
    assert "captured" in found[0].detail
    found = reconcile([ledger()], [psp(amount=D("30.00"))])
    assert [m.kind for m in found] == ["amount_differs"]
    assert "authorised" in found[0].detail


def test_a_void_on_one_side_only() -> None:
    order = ledger(captured=ZERO, shipped=False, voided=True)
    assert kinds([order], [psp(captured=ZERO, status="authorized")]) == ["void_differs"]


def test_the_psp_not_knowing_a_payment_the_shop_acted_on() -> None:
    assert kinds([ledger(shipped=False, checkout_status="captured")], []) == ["missing_at_psp"]
    # Never acted on, and never authorised only: nothing to compare.
    untouched = ledger(checkout_status="captured", shipped=False, operations=0)
    assert kinds([untouched], []) == []


def test_money_captured_for_no_order() -> None:
    found = reconcile(
        [], [psp(transaction_id="pay_orphan"), psp(transaction_id="pay_auth", captured=ZERO)]
    )
    assert [(m.kind, m.transaction_id, m.order_id) for m in found] == [
        ("no_order", "pay_orphan", None)
    ]


def test_mismatches_are_listed_order_by_order() -> None:
    first = ledger(order_id="A-2", transaction_id="pay_2", refunded=D("1.00"))
    second = ledger(order_id="A-1", transaction_id="pay_1", captured=ZERO)
    found = reconcile([first, second], [psp(transaction_id="pay_2"), psp(transaction_id="pay_1")])
    assert [m.order_id for m in found] == ["A-1", "A-2"]
