"""`orderflow webhooks add|list|remove|deliveries|show|retry`: outbound webhook subscriptions
and their deliveries, through the API as admin."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.commands.api_client import call_api, call_api_pages, print_json

app = typer.Typer(
    help="Outbound webhooks: subscriptions of the shop's other systems to order events.",
    no_args_is_help=True,
)
console = Console()

STATUSES = ("pending", "sending", "delivered", "dead")


@app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="Where events are POSTed (http or https).")],
    secret: Annotated[
        str | None,
        typer.Option(help="The signing secret; omitted, one is generated and shown once."),
    ] = None,
    events: Annotated[
        list[str] | None,
        typer.Option("--event", help="An event type to send (repeatable); default: all."),
    ] = None,
) -> None:
    """Subscribe URL to order events; prints the new subscription's id."""
    body: dict[str, object] = {"url": url, "events": events or ["*"]}
    if secret is not None:
        body["secret"] = secret
    print_json(call_api("POST", "/webhooks/subscriptions", role="admin", body=body))


@app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Live subscriptions, secrets masked, with their deliveries per status."""
    rows = call_api("GET", "/webhooks/subscriptions", role="admin")
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"webhook subscriptions: {len(rows)}")
    for column in ("id", "url", "events", "secret", *STATUSES):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["url"],
            ",".join(r["events"]),
            r["secret"],
            *(str(r["deliveries"].get(s, 0)) for s in STATUSES),
        )
    console.print(table)


@app.command("remove")
def remove(subscription_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Stop a subscription: nothing more is sent to it."""
    call_api("DELETE", f"/webhooks/subscriptions/{subscription_id}", role="admin")
    console.print(f"subscription {subscription_id} removed")


@app.command("deliveries")
def deliveries(
    subscription_id: Annotated[int, typer.Argument(metavar="ID", help="A subscription id.")],
    status: Annotated[
        str | None, typer.Option(help="pending | sending | delivered | dead", show_default=False)
    ] = None,
    order: Annotated[str | None, typer.Option("--order", help="Only this order's.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """A subscription's deliveries, newest first (`--status dead`: the dead letters)."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"status must be one of {', '.join(STATUSES)}")
    filters = {k: v for k, v in {"status": status, "order_id": order}.items() if v is not None}
    rows = call_api_pages(
        f"/webhooks/subscriptions/{subscription_id}/deliveries", role="admin", filters=filters
    )
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"deliveries of subscription {subscription_id}: {len(rows)}")
    for column in ("id", "status", "tries", "event", "type", "order", "code", "last error"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["status"],
            str(r["attempts"]),
            str(r["event_id"]),
            r["event_type"],
            r["order_id"],
            str(r["last_status_code"] or ""),
            r["last_error"] or "",
        )
    console.print(table)


@app.command("show")
def show(delivery_id: Annotated[int, typer.Argument(metavar="ID", help="A delivery id.")]) -> None:
    """One delivery with every attempt (status code, latency, error)."""
    print_json(call_api("GET", f"/webhooks/deliveries/{delivery_id}", role="admin"))


@app.command("retry")
def retry(
    delivery_ids: Annotated[
        list[int] | None, typer.Argument(metavar="[ID]...", help="Dead delivery ids.")
    ] = None,
    all_dead: Annotated[
        int | None,
        typer.Option(
            "--all-dead", metavar="SUBSCRIPTION", help="Every dead delivery of a subscription."
        ),
    ] = None,
) -> None:
    """Send dead-lettered deliveries again (by id, or every dead one of a subscription)."""
    ids = list(delivery_ids or [])
    if all_dead is not None:
        dead = call_api_pages(
            f"/webhooks/subscriptions/{all_dead}/deliveries",
            role="admin",
            filters={"status": "dead"},
        )
        # Oldest first, so that an order's events go out again in their order.
        ids.extend(sorted(r["id"] for r in dead))
    if not ids:
        raise typer.BadParameter("name delivery ids or --all-dead SUBSCRIPTION")
    for delivery_id in ids:
        row = call_api("POST", f"/webhooks/deliveries/{delivery_id}/retry", role="admin")
        console.print(f"delivery {row['id']} ({row['event_type']} of {row['order_id']}) pending")
