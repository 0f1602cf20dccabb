"""`orderflow track`: a parcel's tracking, carrier events posted as the carrier would (signed),
and logistics' cases: lost parcels to reship or refund, and parcels no carrier took."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.commands.api_client import call_api, call_api_pages, print_json
from orderflow.settings import get_settings
from orderflow.signing import carrier_secret, signed_headers

app = typer.Typer(
    help="Parcels: tracking, carrier events, lost parcels and rebooking.", no_args_is_help=True
)
console = Console()

TRACKING_STATUSES = ("IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED", "EXCEPTION", "LOST")


@app.command("show")
def show(order_id: str) -> None:
    """Carrier, tracking number and the delivery part of an order's timeline."""
    data = call_api("GET", f"/orders/{order_id}", role="admin")
    console.print(
        f"order {order_id}: {data['status']}; carrier {data['carrier'] or '—'}, "
        f"tracking {data['tracking_number'] or '—'}, expected {data['expected_delivery'] or '—'}"
    )
    table = Table(title="delivery and tracking")
    for column in ("at", "what", "status", "who"):
        table.add_column(column)
    for entry in data["timeline"]:
        if entry["step"] >= 6:
            table.add_row(entry["at"], entry["kind"], entry["status"] or "", entry["actor"])
    console.print(table)


@app.command("post")
def post_event(
    carrier: str,
    tracking_number: str,
    status: Annotated[str, typer.Argument(help=" | ".join(TRACKING_STATUSES))],
    event_id: Annotated[str | None, typer.Option(help="Default: a new id")] = None,
) -> None:
    """Post a tracking event to the webhook, signed with the carrier's secret."""
    if status not in TRACKING_STATUSES:
        raise typer.BadParameter(f"status must be one of {', '.join(TRACKING_STATUSES)}")
    body = json.dumps(
        {
            "event_id": event_id or f"{tracking_number}-cli-{uuid.uuid4().hex[:8]}",
            "tracking_number": tracking_number,
            "status": status,
            "at": datetime.now(UTC).isoformat(),
        }
    ).encode()
    secret = carrier_secret(get_settings(), carrier)
    print_json(
        call_api(
            "POST",
            f"/carriers/{carrier}/events",
            content=body,
            headers={
                "Content-Type": "application/json",
                **signed_headers(secret, body, int(time.time())),
            },
        )
    )


@app.command("lost")
def lost() -> None:
    """Lost parcels awaiting logistics' decision, oldest first."""
    table = Table(title="lost parcels")
    for column in ("order", "case", "carrier", "tracking"):
        table.add_column(column, no_wrap=True)
    for column in ("reason", "since"):
        table.add_column(column)
    for case in call_api_pages("/logistics/lost-parcels", role="logistics"):
        table.add_row(
            case["order_id"],
            str(case["case_no"]),
            case["carrier"],
            case["tracking_number"],
            case["reason"],
            case["opened_at"],
        )
    console.print(table)


@app.command("resolve")
def resolve(
    order_id: str,
    action: Annotated[str, typer.Argument(help="reship | refund")],
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Resolve a lost parcel: reship a replacement, or refund (the order closes CANCELLED)."""
    if action not in ("reship", "refund"):
        raise typer.BadParameter("action must be reship or refund")
    print_json(
        call_api(
            "POST",
            f"/logistics/{order_id}/resolution",
            role="logistics",
            body={"action": action, "note": note},
        )
    )


@app.command("rebook")
def rebook(order_id: str, note: Annotated[str | None, typer.Option()] = None) -> None:
    """Try the booking again for a packed parcel no carrier took."""
    print_json(
        call_api("POST", f"/logistics/{order_id}/rebook", role="logistics", body={"note": note})
    )
