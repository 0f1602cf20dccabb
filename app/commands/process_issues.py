"""`orderflow process-issues add|list|start|resolve`: staff's difficulties with a step,
through the API as the given operator role."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from app.commands.api_client import call_api, call_api_pages, print_json

app = typer.Typer(
    help="Process issues: difficulties staff meet with a step, owned by a department.",
    no_args_is_help=True,
)
console = Console()

RoleOption = Annotated[
    str, typer.Option("--role", help="The operator role to act as (its token is used).")
]


@app.command("add")
def add(
    step: Annotated[int, typer.Option("--step", min=1, max=8, help="The step (1-8).")],
    description: Annotated[str, typer.Option("--description", help="What goes wrong.")],
    department: Annotated[
        str | None,
        typer.Option("--department", help="Owner (default: the department doing the step)."),
    ] = None,
    order_id: Annotated[str | None, typer.Option("--order", help="An order showing it.")] = None,
    severity: Annotated[str, typer.Option("--severity", help="low, medium or high.")] = "medium",
    role: RoleOption = "admin",
) -> None:
    """Raise a process issue; prints it with its ticket id."""
    body: dict[str, Any] = {"step": step, "description": description, "severity": severity}
    if department is not None:
        body["department"] = department
    if order_id is not None:
        body["order_id"] = order_id
    print_json(call_api("POST", "/process-issues", role=role, body=body))


@app.command("list")
def list_issues(
    status: Annotated[
        str | None, typer.Option("--status", help="open, in_progress or resolved.")
    ] = None,
    department: Annotated[str | None, typer.Option("--department")] = None,
    step: Annotated[int | None, typer.Option("--step", min=1, max=8)] = None,
    severity: Annotated[str | None, typer.Option("--severity")] = None,
    order_id: Annotated[str | None, typer.Option("--order")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    role: RoleOption = "admin",
) -> None:
    """Process issues matching every filter given, oldest first."""
    filters = {
        "status": status,
        "department": department,
        "step": step,
        "severity": severity,
        "order_id": order_id,
    }
    issues = call_api_pages(
        "/process-issues", role=role, filters={k: v for k, v in filters.items() if v is not None}
    )
    if as_json:
        print_json(issues)
        return
    table = Table(title=f"process issues: {len(issues)}")
    # The ticket id whole on one line, so it can be copied to `resolve`.
    table.add_column("ticket", no_wrap=True)
    for column in ("step", "department", "severity", "status", "order", "raised", "what"):
        table.add_column(column, overflow="fold")
    for i in issues:
        table.add_row(
            i["ticket_id"],
            f"{i['step']} {i['step_name']}",
            i["department"],
            i["severity"],
            i["status"],
            i["order_id"] or "",
            i["raised_at"],
            i["description"] if i["status"] != "resolved" else f"resolved: {i['resolution']}",
        )
    console.print(table)


@app.command("start")
def start(ticket_id: str, role: RoleOption = "admin") -> None:
    """Take an open issue up (in progress)."""
    print_json(call_api("POST", f"/process-issues/{ticket_id}/start", role=role))


@app.command("resolve")
def resolve(
    ticket_id: str,
    note: Annotated[str, typer.Option("--note", help="What was done about it (required).")],
    role: RoleOption = "admin",
) -> None:
    """Resolve an issue with a note saying what was done."""
    print_json(
        call_api("POST", f"/process-issues/{ticket_id}/resolve", role=role, body={"note": note})
    )
