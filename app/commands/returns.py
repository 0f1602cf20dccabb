"""`orderflow returns list|show|request|decide|inspect`: returns of delivered orders, for
customer service (admin) and the warehouse.

Every command goes through the API with the role's token: `inspect` as warehouse, the rest
as admin; a refusal prints its detail and exits 1, an unreachable API exits 2.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.table import Table

from app.commands.api_client import call_api, print_json, send_request
from orderflow.models.returns import ReturnStatus

app = typer.Typer(
    help="Returns of delivered orders: list, request, decide, inspect.", no_args_is_help=True
)
console = Console()

STATUSES = tuple(s.value for s in ReturnStatus)
RESOLUTIONS = ("refund", "exchange")
DECISIONS = ("approve", "reject")
OUTCOMES = ("restock", "dispose")
# The API's bounds, checked here too so a slip is a usage error, not a validation dump.
REASON_MAX = 500
NOTE_MAX = 2000
# The most rows the API gives in one page; `list --limit` beyond it follows the cursors.
PAGE_MAX = 200


def _pairs(given: list[str], what: str) -> list[tuple[str, str]]:
    """`SKU=VALUE` arguments as pairs, each SKU once."""
    pairs: list[tuple[str, str]] = []
    for arg in given:
        sku, sep, value = arg.partition("=")
        if not sep or not sku or not value:
            raise typer.BadParameter(f"{arg!r} is not {what}")
        if any(sku == seen for seen, _ in pairs):
            raise typer.BadParameter(f"{sku} is given twice")
        pairs.append((sku, value))
    return pairs


def _note(note: str | None) -> dict[str, str]:
    if note is None:
        return {}
    if len(note) > NOTE_MAX:
        raise typer.BadParameter(f"--note is longer than {NOTE_MAX} characters")
    return {"note": note}


def _newest(filters: dict[str, str], limit: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` returns from `GET /returns`, newest first, page by page; and whether
    more follow."""
    records: list[dict[str, Any]] = []
    params: dict[str, Any] = dict(filters)
    while True:
        # Only as many as still wanted: a short list costs one small page.
        params["limit"] = min(limit - len(records), PAGE_MAX)
        response = send_request("GET", "/returns", role="admin", params=params)
        records.extend(response.json())
        cursor = response.headers.get("X-Next-Cursor")
        if not cursor or len(records) >= limit:
            return records, bool(cursor)
        params["cursor"] = cursor


def _lines(lines: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{line['quantity']}× {line['sku']}"
        + (" for exchange" if line.get("resolution") == "exchange" else "")
        + (f" ({line['outcome']})" if line.get("outcome") else "")
        for line in lines
    )


@app.command("list")
def list_command(
    status: Annotated[
        str | None, typer.Option("--status", help=" | ".join(STATUSES), show_default=False)
    ] = None,
    order_id: Annotated[
        str | None, typer.Option("--order", help="Only this order's returns.", show_default=False)
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Returns across orders, newest first."""
    filters: dict[str, str] = {}
    if status is not None:
        status = status.upper()
        if status not in STATUSES:
            raise typer.BadParameter(f"status must be one of {', '.join(STATUSES)}")
        filters["status"] = status
    if order_id is not None:
        filters["order_id"] = order_id
    records, more = _newest(filters, limit)
    if as_json:
        print_json(records)
        return
    shown = f", the newest {limit} (--limit for more)" if more else ""
    table = Table(title=f"returns{f' ({status})' if status else ''}: {len(records)}{shown}")
    # Ids whole on one line, so they can be copied to `show`, `decide`, `inspect`.
    for column in ("return", "order", "status"):
        table.add_column(column, no_wrap=True)
    for column in ("lines", "requested", "refund"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(
            r["return_id"],
            r["order_id"],
            r["status"],
            _lines(r["lines"]),
            r["requested_at"][:16].replace("T", " "),
            r["refund_amount"] or "",
        )
    console.print(table)


@app.command("show")
def show_command(
    return_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One return: status, lines and their inspection, label and refund."""
    found = call_api("GET", f"/returns/{quote(return_id, safe='')}", role="admin")
    if as_json:
        print_json(found)
        return
    refund = found["refund_amount"]
    text = [
        f"return {found['return_id']} of order {found['order_id']}: {found['status']}",
        f"requested {found['requested_at']}: {found['reason']}",
        f"label: {found['carrier'] or '—'} {found['tracking_number'] or '—'} "
        f"{found['label_url'] or ''}".rstrip(),
        f"refund: {refund if refund is not None else 'none yet'}",
        "lines:",
        *(
            f"  {line['quantity']} x {line['sku']} @ {line['unit_price']}"
            + (" for exchange" if line.get("resolution") == "exchange" else "")
            + (f": {line['outcome']}" if line.get("outcome") else ": not inspected")
            + (f" ({line['note']})" if line.get("note") else "")
            for line in found["lines"]
        ),
    ]
    typer.echo("\n".join(text))


@app.command("request")
def request_command(
    order_id: str,
    lines: Annotated[
        list[str],
        typer.Argument(
            metavar="SKU=QTY", help="What goes back, e.g. TSHIRT-M=1.", show_default=False
        ),
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why, in the customer's words.")],
    resolution: Annotated[
        str, typer.Option("--resolution", help=" | ".join(RESOLUTIONS))
    ] = "refund",
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Idempotency key of this request; the same key again answers with the "
            "return made the first time. Default: a new one, printed to repeat it.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Ask to send lines of a delivered order back (as admin, for the customer)."""
    requested = []
    for sku, qty in _pairs(lines, "SKU=QTY"):
        if not qty.isdigit() or int(qty) < 1:
            raise typer.BadParameter(f"{sku}: the quantity must be a whole number of at least 1")
        requested.append({"sku": sku, "quantity": int(qty)})
    if not reason.strip() or len(reason) > REASON_MAX:
        raise typer.BadParameter(f"--reason must have 1 to {REASON_MAX} characters")
    if resolution not in RESOLUTIONS:
        raise typer.BadParameter(f"resolution must be one of {', '.join(RESOLUTIONS)}")
    if key is None:
        key = f"return-{uuid.uuid4().hex}"
        # On stderr, so the JSON on stdout stays readable by scripts.
        typer.echo(f"Idempotency-Key: {key} (repeat with --key {key})", err=True)
    print_json(
        call_api(
            "POST",
            f"/orders/{quote(order_id, safe='')}/returns",
            role="admin",
            body={"lines": requested, "reason": reason, "resolution": resolution},
            headers={"Idempotency-Key": key},
        )
    )


@app.command("decide")
def decide_command(
    return_id: str,
    decision: Annotated[str, typer.Argument(help=" | ".join(DECISIONS))],
    note: Annotated[str | None, typer.Option(help="Why, for the timeline.")] = None,
) -> None:
    """Customer service's decision on a return outside the automatic rules (REQUESTED)."""
    if decision not in DECISIONS:
        raise typer.BadParameter(f"decision must be one of {', '.join(DECISIONS)}")
    print_json(
        call_api(
            "POST",
            f"/returns/{quote(return_id, safe='')}/decision",
            role="admin",
            body={"decision": decision, **_note(note)},
        )
    )


@app.command("inspect")
def inspect_command(
    return_id: str,
    findings: Annotated[
        list[str],
        typer.Argument(
            metavar="SKU=restock|dispose", help="What the warehouse found, line by line."
        ),
    ],
    note: Annotated[str | None, typer.Option(help="What was found (every line given).")] = None,
) -> None:
    """Record the inspection of an arrived return (as warehouse).

    When every line is inspected, the accepted ones are refunded."""
    inspected = []
    for sku, outcome in _pairs(findings, "SKU=restock or SKU=dispose"):
        if outcome not in OUTCOMES:
            raise typer.BadParameter(f"{sku}: the outcome must be restock or dispose")
        inspected.append({"sku": sku, "outcome": outcome, **_note(note)})
    print_json(
        call_api(
            "POST",
            f"/warehouse/returns/{quote(return_id, safe='')}/inspection",
            role="warehouse",
            body={"lines": inspected},
        )
    )
