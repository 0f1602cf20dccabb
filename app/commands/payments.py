"""`orderflow payments reconcile [--json]`: the shop's payment ledger against the PSP;
`orderflow payments show ORDER_ID` and `orderflow payments retry-capture ORDER_ID`:
finance's view of an order's payment and its answer to a refused capture (through the API).

Reads the ledger from PostgreSQL (`DATABASE_URL`, as `orderflow report` does) and every
payment the PSP holds through its API (`ORDERFLOW_PSP_API_URL`, `ORDERFLOW_PSP_API_KEY`),
and prints each mismatch per order (`policies/reconciliation.py`). Exit 0 when both agree,
1 on any mismatch, 2 when a side cannot be read.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer
from rich.console import Console

from activities.psp_client import PspClient, PspClientError
from app.commands.api_client import call_api, print_json
from db.pool import connect
from db.repositories import payments
from orderflow.settings import Settings, get_settings
from policies.reconciliation import LedgerFacts, Mismatch, PspFacts, psp_facts, reconcile

app = typer.Typer(help="The order's payments at the PSP.", no_args_is_help=True)
console = Console()


async def read_both(settings: Settings) -> tuple[list[LedgerFacts], list[PspFacts]]:
    """The ledger of every order the PSP may know, and every payment the PSP holds."""
    async with PspClient(settings) as psp:
        listed = await psp.list_payments()
    conn = await connect(settings.database_url or "")
    try:
        rows = await payments.ledgers(conn, [p.transaction_id for p in listed])
    finally:
        await conn.close()
    ledger = [
        LedgerFacts(
            order_id=r["order_id"],
            transaction_id=r["transaction_id"],
            checkout_status=r["checkout_status"],
            amount=r["amount"],
            captured=r["captured"],
            refunded=r["refunded"],
            refunding=r["refunding"],
            voided=r["voided"],
            shipped=r["shipped"],
            operations=r["operations"],
        )
        for r in rows
    ]
    at_psp = [
        psp_facts(
            p.transaction_id,
            p.status,
            p.amount,
            p.captured_amount,
            p.refunded_amount,
            [r.amount for r in p.refunds if r.status == "pending"],
        )
        for p in listed
    ]
    return ledger, at_psp


def report_json(
    mismatches: list[Mismatch], ledger: list[LedgerFacts], psp: list[PspFacts]
) -> dict[str, Any]:
    return {
        "orders_checked": len(ledger),
        "payments_at_psp": len(psp),
        "mismatch_count": len(mismatches),
        "mismatches": [m.model_dump(mode="json") for m in mismatches],
    }


@app.command("reconcile")
def reconcile_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON document.")] = False,
) -> None:
    """Compare the ledger with the PSP's records; every mismatch per order. Exit 1 on any."""
    settings = get_settings()
    if not settings.database_url:
        raise typer.BadParameter("DATABASE_URL is not set")
    try:
        ledger, at_psp = asyncio.run(read_both(settings))
    except PspClientError as exc:
        console.print(f"[red]cannot read the PSP at {settings.psp_api_url}: {exc}[/]")
        raise typer.Exit(2) from exc
    mismatches = reconcile(ledger, at_psp)
    if as_json:
        print(json.dumps(report_json(mismatches, ledger, at_psp), indent=2))
    else:
        for m in mismatches:
            console.print(
                f"[red]{m.order_id or '(no order)'}[/] {m.transaction_id} "
                f"[bold]{m.kind}[/]: {m.detail}",
                highlight=False,
            )
        verdict = "[green]ledger and PSP agree[/]" if not mismatches else "[red]mismatches[/]"
        console.print(
            f"{verdict}: {len(ledger)} orders checked, {len(at_psp)} payments at the PSP, "
            f"{len(mismatches)} mismatches"
        )
    if mismatches:
        raise typer.Exit(1)


@app.command("show")
def show_command(order_id: str) -> None:
    """The order's payment: checkout, captured, refunded, disputed, every operation."""
    print_json(call_api("GET", f"/payments/{order_id}", role="admin"))


@app.command("retry-capture")
def retry_capture_command(
    order_id: str, note: Annotated[str | None, typer.Option(help="Why, for the timeline.")] = None
) -> None:
    """Capture again the payment of an order held at PACKED after the PSP refused it (to
    give up instead, cancel the order: its authorisation is voided)."""
    print_json(
        call_api("POST", f"/payments/{order_id}/capture/retry", role="admin", body={"note": note})
    )
