"""`orderflow channels status|exceptions|place|reject`: the marketplaces' feeds and the
orders from them that could not be mapped (through the API, as admin)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from app.commands.api_client import call_api, print_json

app = typer.Typer(help="Marketplaces: their feeds and channel exceptions.", no_args_is_help=True)
console = Console()


@app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON answer.")] = False,
) -> None:
    """Each marketplace's feed: last poll, last error, orders placed, waiting, rejected."""
    feeds = call_api("GET", "/channels", role="admin")
    if as_json:
        print_json(feeds)
        return
    table = Table(title="marketplaces")
    columns = ("marketplace", "cursor", "polled", "lag s", "placed", "unacked", "exceptions")
    for column in (*columns, "rejected", "error"):
        table.add_column(column)
    for feed in feeds:
        table.add_row(
            feed["marketplace"],
            feed["cursor"] or "",
            feed["polled_at"] or "never",
            "" if feed["lag_seconds"] is None else f"{feed['lag_seconds']:.1f}",
            str(feed["placed"]),
            str(feed["unacknowledged"]),
            str(feed["exceptions"]),
            str(feed["rejected"]),
            feed["last_error"] or "",
        )
    console.print(table)


@app.command("exceptions")
def exceptions_command() -> None:
    """Orders from marketplaces waiting for customer service, with their problem."""
    print_json(call_api("GET", "/channels/exceptions", role="admin"))


@app.command("place")
def place_command(
    marketplace: str,
    external_order_id: str,
    corrected: Annotated[Path, typer.Argument(help="The corrected feed order (JSON file).")],
    note: Annotated[str, typer.Option()] = "placed after correction",
) -> None:
    """Place a channel exception from its corrected payload and acknowledge it."""
    raw = json.loads(corrected.read_text(encoding="utf-8"))
    print_json(
        call_api(
            "POST",
            f"/channels/exceptions/{marketplace}/{external_order_id}/place",
            role="admin",
            body={"raw": raw, "note": note},
        )
    )


@app.command("reject")
def reject_command(
    marketplace: str, external_order_id: str, note: Annotated[str, typer.Option()]
) -> None:
    """Reject a channel exception: nobody places it."""
    print_json(
        call_api(
            "POST",
            f"/channels/exceptions/{marketplace}/{external_order_id}/reject",
            role="admin",
            body={"note": note},
        )
    )
