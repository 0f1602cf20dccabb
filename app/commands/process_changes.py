"""`orderflow process-changes list|add`: the dated changes to how the process runs, through
the API (adding one is admin's)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from app.commands.api_client import call_api, call_api_pages, print_json

app = typer.Typer(
    help="Process changes: what changed in how the process runs, old → new, who, when, why.",
    no_args_is_help=True,
)
console = Console()


def _shown(value: Any) -> str:
    return "—" if value is None else json.dumps(value)


@app.command("list")
def list_changes(
    step: Annotated[int | None, typer.Option("--step", min=1, max=8)] = None,
    setting: Annotated[
        str | None, typer.Option("--setting", help="A setting's name or dotted prefix.")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="ISO time, e.g. 2026-11-01T00:00Z")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="ISO time")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Process changes, oldest first; their ids are what `orderflow report --around` takes."""
    filters = {"step": step, "setting": setting, "from": from_, "to": to}
    changes = call_api_pages(
        "/process-changes",
        role="admin",
        filters={k: v for k, v in filters.items() if v is not None},
    )
    if as_json:
        print_json(changes)
        return
    table = Table(title=f"process changes: {len(changes)}")
    table.add_column("id", no_wrap=True, justify="right")
    for column in ("when", "what", "old → new", "steps", "who", "why"):
        table.add_column(column, overflow="fold")
    for c in changes:
        table.add_row(
            str(c["id"]),
            c["changed_at"],
            c["setting"],
            f"{_shown(c['old_value'])} → {_shown(c['new_value'])}",
            ", ".join(str(s) for s in c["steps"]),
            c["changed_by"],
            c["reason"],
        )
    console.print(table)


def _value(text: str | None) -> Any:
    """JSON when it parses (numbers, true, "PT2H" quoted or not), else the text itself."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


@app.command("add")
def add(
    setting: Annotated[str, typer.Option("--setting", help="What changed (a dotted name).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required).")],
    new: Annotated[str | None, typer.Option("--new", help="The new value (JSON or text).")] = None,
    old: Annotated[str | None, typer.Option("--old", help="The old value (JSON or text).")] = None,
    steps: Annotated[
        list[int] | None, typer.Option("--step", help="A step it touches (repeatable).")
    ] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="When it took effect (ISO time), if not now.")
    ] = None,
) -> None:
    """Record a change to the process (as admin), with its reason."""
    body: dict[str, Any] = {
        "setting": setting,
        "reason": reason,
        "old_value": _value(old),
        "new_value": _value(new),
    }
    if steps:
        body["steps"] = steps
    if at is not None:
        body["changed_at"] = at
    print_json(call_api("POST", "/process-changes", role="admin", body=body))
