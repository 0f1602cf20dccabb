"""`orderflow mail`: what the embedded mail server received, and the shop's mail outbox.

Two things with their own ids:
- the MAILBOX (`list`, `show`): messages the embedded mail server received, read from it
  directly at `mailbox_url` (ORDERFLOW_MAILBOX_URL, default http://127.0.0.1:8025); only
  there when `orderflow up` runs its own mail server;
- the OUTBOX (`outbox`, `retry`): the shop's notification rows and their delivery state,
  through the API as admin; `retry ID` takes an outbox row id (from `outbox` or from
  customer service's queue), never a mailbox message id.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
import typer
from rich.console import Console
from rich.table import Table

from app.commands.api_client import call_api, print_json
from orderflow.settings import get_settings

app = typer.Typer(
    help=(
        "E-mail. `list` and `show` read the MAILBOX: what the embedded mail server received "
        "(ORDERFLOW_MAILBOX_URL). `outbox` and `retry` act on the OUTBOX: the shop's mail "
        "rows and their delivery, through the API as admin; their ids are outbox row ids."
    ),
    no_args_is_help=True,
)
console = Console()

STATUSES = ("pending", "sending", "sent", "failed")


def _mailbox(path: str, params: dict[str, Any] | None = None) -> Any:
    """GET from the embedded mail server; unreachable exits 2, a refusal exits 1."""
    base = get_settings().mailbox_url.rstrip("/")
    try:
        response = httpx.get(f"{base}{path}", params=params, timeout=10)
    except httpx.HTTPError as exc:
        console.print(
            f"[red]cannot reach the mailbox at {base}: {exc}[/]\n"
            "It runs with `orderflow up` when ORDERFLOW_SMTP_HOST is not set; "
            "ORDERFLOW_MAILBOX_URL says where it is."
        )
        raise typer.Exit(2) from exc
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        console.print(f"[red]{response.status_code}: {detail}[/]")
        raise typer.Exit(1)
    return response.json()


@app.command("list")
def list_messages(
    to: Annotated[str | None, typer.Option("--to", help="Only messages to this address.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The MAILBOX: messages the embedded mail server received, newest first.

    The shop's own rows and their delivery status: `orderflow mail outbox --status ...`."""
    params: dict[str, Any] = {"limit": limit}
    if to:
        params["to"] = to
    messages = _mailbox("/messages", params)
    if as_json:
        print_json(messages)
        return
    table = Table(title=f"mailbox{f' of {to}' if to else ''}: {len(messages)} messages")
    for column in ("id", "received", "to", "order", "kind", "subject"):
        table.add_column(column, overflow="fold")
    for m in messages:
        table.add_row(
            str(m["id"]),
            m["received_at"][:19],
            ", ".join(m["to"]),
            m["order_id"] or "",
            m["notification"] or "",
            m["subject"],
        )
    console.print(table)


@app.command("show")
def show_message(
    message_id: Annotated[int, typer.Argument(metavar="ID", help="A mailbox message id.")],
    html: Annotated[bool, typer.Option("--html", help="Print the HTML part too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The MAILBOX: one received message, its headers and text (and HTML with --html)."""
    message = _mailbox(f"/messages/{message_id}")
    if as_json:
        print_json(message)
        return
    shown = {"From", "To", "Subject", "Date", "Message-ID"}
    shown |= {"X-Orderflow-Order", "X-Orderflow-Notification"}
    for name, value in message["headers"]:
        if name in shown:
            console.print(f"[bold]{name}:[/] {value}", highlight=False, markup=True)
    console.print()
    console.print(message["text"] or "(no text part)", highlight=False, markup=False)
    if html:
        console.print("\n[bold]--- HTML part ---[/]")
        console.print(message["html"] or "(no HTML part)", highlight=False, markup=False)


@app.command("outbox")
def outbox(
    status: Annotated[
        str | None, typer.Option(help="pending | sending | sent | failed", show_default=False)
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="Only rows to this address.")] = None,
    order: Annotated[str | None, typer.Option("--order", help="Only rows of this order.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The OUTBOX: the shop's mail rows and their delivery state, newest first (admin)."""
    if status is not None and status not in STATUSES:
        raise typer.BadParameter(f"status must be one of {', '.join(STATUSES)}")
    query = {"status": status, "recipient": to, "order_id": order, "limit": limit}
    params = urlencode({k: v for k, v in query.items() if v is not None})
    rows = call_api("GET", f"/mail/outbox?{params}", role="admin")
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"outbox{f' ({status})' if status else ''}: {len(rows)} rows")
    for column in ("id", "status", "tries", "kind", "order", "to", "subject", "last error"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["status"],
            str(r["attempts"]),
            r["kind"],
            r["order_id"] or "",
            r["recipient"],
            r["subject"],
            r["last_error"] or "",
        )
    console.print(table)


@app.command("retry")
def retry(
    row_id: Annotated[int, typer.Argument(metavar="ID", help="An outbox row id.")],
) -> None:
    """The OUTBOX: send a failed mail again (admin).

    ID: an outbox row id (`mail outbox --status failed`, customer service's queue)."""
    print_json(call_api("POST", f"/mail/outbox/{row_id}/retry", role="admin"))
