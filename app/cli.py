"""The `orderflow` command line: run the stack and its parts, and act as storefront or
operator through the HTTP API (with the role's token)."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from app.commands import (
    channels,
    forecast,
    mail,
    payments,
    process_changes,
    process_issues,
    process_review,
    replenish,
    returns,
    risk,
    track,
    webhooks,
)
from app.commands.api_client import call_api, call_api_pages, print_json
from orderflow.logs import configure_logging
from orderflow.settings import Settings, UnsafeForProduction, get_settings

app = typer.Typer(help="orderflow: every order a durable Temporal workflow.", no_args_is_help=True)
review_app = typer.Typer(help="Flagged orders awaiting a decision.", no_args_is_help=True)
warehouse_app = typer.Typer(help="Pick and pack tasks.", no_args_is_help=True)
inventory_app = typer.Typer(help="Stock levels and their invariants.", no_args_is_help=True)
app.add_typer(review_app, name="review")
app.add_typer(warehouse_app, name="warehouse")
app.add_typer(inventory_app, name="inventory")
app.add_typer(risk.app, name="risk")
app.add_typer(forecast.app, name="forecast")
app.add_typer(channels.app, name="channels")
app.add_typer(replenish.app, name="replenish")
app.add_typer(track.app, name="track")
app.add_typer(mail.app, name="mail")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(payments.app, name="payments")
app.add_typer(returns.app, name="returns")
app.add_typer(process_issues.app, name="process-issues")
app.add_typer(process_changes.app, name="process-changes")
app.command("process-review")(process_review.process_review)

console = Console()


def _logging() -> None:
    configure_logging(get_settings())


def _settings_to_serve() -> Settings:
    """The settings of a serving process (api, worker, up); in production mode a setting
    left at a development value ends the command here, with its name and no traceback."""
    settings = get_settings()
    try:
        settings.require_safe_for_production()
    except UnsafeForProduction as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    return settings


def _call(method: str, path: str, role: str, body: Any = None) -> Any:
    """One API call as `role`; a refusal is printed with its detail and exits non-zero."""
    return call_api(method, path, role=role, body=body)


# ---------------------------------------------------------------- running it
@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Also place sample orders continuously.")] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, max=64, help="Worker processes (default ORDERFLOW_UP_WORKERS, 1)."
        ),
    ] = None,
) -> None:
    """Start the whole embedded stack: Temporal dev server + UI, PostgreSQL, worker, API."""
    from app.stack_runner import run_stack
    from stack.supervisor import StackError

    _logging()
    try:
        reason = run_stack(_settings_to_serve(), demo=demo, console=console, workers=workers)
    except StackError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    # A part that kept dying is a failure a service manager (systemd, a container) sees.
    if reason != "stop requested":
        raise typer.Exit(1)


@app.command()
def worker() -> None:
    """Run a worker (start as many as you like)."""
    from workers.order_worker import run_worker

    _logging()
    settings = _settings_to_serve()
    if not settings.database_url:
        raise typer.BadParameter("DATABASE_URL is not set")
    asyncio.run(run_worker(settings, database_url=settings.database_url))


@app.command()
def api() -> None:
    """Run the HTTP API."""
    import uvicorn

    from api.app import create_app

    _logging()
    settings = _settings_to_serve()
    # Open event streams must not hold a shutdown for their whole lifetime.
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        # JSON lines: uvicorn's own lines go through the root logger's format too.
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        timeout_graceful_shutdown=5,
    )


@app.command("carrier-simulator")
def carrier_simulator() -> None:
    """Run the carrier simulator (stands in for the carriers' APIs)."""
    from simulators.carrier import run

    _logging()
    run(settings=get_settings())


@app.command("psp-simulator")
def psp_simulator() -> None:
    """Run the payment service provider simulator (stands in for the PSP's API) on
    ORDERFLOW_PSP_SIMULATOR_PORT (8200)."""
    from simulators.psp import run

    _logging()
    run(settings=get_settings())


@app.command("marketplace-simulator")
def marketplace_simulator() -> None:
    """Run the marketplace simulator (stands in for the marketplaces' APIs, one path per
    code of ORDERFLOW_MARKETPLACE_SIMULATOR_CODES) on ORDERFLOW_MARKETPLACE_SIMULATOR_PORT
    (8300)."""
    from simulators.marketplaces import run

    _logging()
    run(settings=get_settings())


@app.command("mail-server")
def mail_server() -> None:
    """Run the embedded mail server: SMTP on ORDERFLOW_SMTP_PORT (1025), keeping what it
    receives; its HTTP API on ORDERFLOW_MAIL_SIMULATOR_HTTP_PORT (8025)."""
    from simulators.mailserver import run

    _logging()
    run(get_settings())


@app.command()
def migrate() -> None:
    """Apply database migrations and seed the demo catalogue."""
    from app.stack_runner import prepare_database

    settings = get_settings()
    if not settings.database_url:
        raise typer.BadParameter("DATABASE_URL is not set")
    asyncio.run(prepare_database(settings.database_url))
    console.print("database ready")


# ---------------------------------------------------------------- storefront
@app.command()
def place(file: Annotated[Path, typer.Argument(exists=True, readable=True)]) -> None:
    """Place the order in FILE.json (SPEC order JSON)."""
    print_json(_call("POST", "/orders", "storefront", json.loads(file.read_text())))


@app.command()
def status(order_id: str) -> None:
    """Live status and timeline of an order."""
    data = _call("GET", f"/orders/{order_id}", "admin")
    table = Table(title=f"order {order_id}: {data['status']}")
    for column in ("step", "status", "what", "who", "at"):
        table.add_column(column, overflow="fold")
    for e in data["timeline"]:
        table.add_row(
            f"{e['step']} {e['step_name']}", e["status"] or "", e["kind"], e["actor"], e["at"]
        )
    console.print(table)
    console.print(
        f"type {data['order_type']}, department {data['department']}, risk {data['risk_score']}, "
        f"carrier {data['carrier']}, tracking {data['tracking_number']}"
    )


@app.command()
def cancel(
    order_id: str, reason: Annotated[str, typer.Option(help="Why")] = "customer request"
) -> None:
    """Cancel an order before shipment."""
    print_json(_call("POST", f"/orders/{order_id}/cancel", "admin", {"reason": reason}))


# ---------------------------------------------------------------- review
@review_app.command("list")
def review_list() -> None:
    """Flagged orders awaiting a decision, oldest first."""
    table = Table(title="pending reviews")
    for column in ("order", "score", "reasons", "due", "escalated"):
        table.add_column(column)
    for r in call_api_pages("/reviews/pending", role="reviewer"):
        reasons = "; ".join(x.get("code", "") for x in r["reasons"])
        table.add_row(r["order_id"], f"{r['score']:.0f}", reasons, r["due_at"], str(r["escalated"]))
    console.print(table)


@review_app.command("show")
def review_show(
    order_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="The task as the API gives it.")] = False,
) -> None:
    """One review task: score and reasons beside the order's lines, total, addresses,
    payment and the customer's history."""
    task = _call("GET", f"/reviews/{order_id}", "reviewer")
    if as_json:
        print_json(task)
        return
    history = task["customer_history"]
    amounts = ", ".join(f"{v} {k}" for k, v in history["amounts"].items()) or "nothing"
    payment = task["payment"]
    lines = [
        f"order {task['order_id']} ({task['status']}, review {task['task_status']}), "
        f"placed {task['placed_at']} via {task['channel']}",
        f"score {task['score']:.0f} (risk version {task['risk_model_version'] or 'settings'})",
        *(f"  +{r['points']:g} {r['message']}" for r in task["reasons"]),
        "lines:",
        *(
            f"  {i['quantity']} x {i['sku']} {i.get('name') or ''} @ {i['unit_price']} = "
            f"{i['line_total']}"
            for i in task["items"]
        ),
        f"total {task['total']} {task['currency']}; payment {payment['method']} "
        f"{payment['status']} {payment['amount']} ({payment['transaction_id']})",
        f"customer {task['customer']['id']} {task['customer']['email']}",
        f"ship to {_address(task['shipping_address'])}",
        f"bill to {_address(task['billing_address'] or task['shipping_address'])}",
        f"history: {history['orders']} other order(s) for {amounts}, first "
        f"{history['first_order_at'] or 'never'}; {history['flagged']} flagged "
        f"({history['approved']} approved, {history['rejected']} rejected, "
        f"{history['timed_out']} timed out, {history['awaiting_review']} awaiting), "
        f"{history['reported_fraud']} reported as fraud",
    ]
    typer.echo("\n".join(lines))


def _address(address: dict[str, Any]) -> str:
    parts = ("name", "line1", "line2", "postal_code", "city", "country")
    return ", ".join(str(address[p]) for p in parts if address.get(p))


@review_app.command("approve")
def review_approve(order_id: str, note: Annotated[str | None, typer.Option()] = None) -> None:
    print_json(
        _call(
            "POST",
            f"/reviews/{order_id}/decision",
            "reviewer",
            {"decision": "approve", "note": note},
        )
    )


@review_app.command("reject")
def review_reject(order_id: str, note: Annotated[str, typer.Option(help="Required")]) -> None:
    print_json(
        _call(
            "POST",
            f"/reviews/{order_id}/decision",
            "reviewer",
            {"decision": "reject", "note": note},
        )
    )


# ---------------------------------------------------------------- warehouse & stock
@warehouse_app.command("list")
def warehouse_list() -> None:
    table = Table(title="warehouse tasks")
    for column in ("order", "status", "due", "lines"):
        table.add_column(column)
    for t in call_api_pages("/warehouse/tasks", role="warehouse"):
        lines = ", ".join(f"{x['quantity']}× {x['sku']} @{x['bin_location']}" for x in t["lines"])
        table.add_row(t["order_id"], t["status"], t["due_at"], lines)
    console.print(table)


@warehouse_app.command("picked")
def warehouse_picked(order_id: str) -> None:
    print_json(_call("POST", f"/warehouse/tasks/{order_id}/picked", "warehouse"))


@warehouse_app.command("packed")
def warehouse_packed(
    order_id: str, weight_kg: Annotated[float, typer.Option("--weight-kg")]
) -> None:
    print_json(
        _call("POST", f"/warehouse/tasks/{order_id}/packed", "warehouse", {"weight_kg": weight_kg})
    )


@app.command()
def receive(
    sku: str,
    quantity: int,
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            help="Idempotency key of this receipt (e.g. the delivery note's number); the "
            "same key again counts the goods once. Default: a new one, printed to repeat it.",
        ),
    ] = None,
) -> None:
    """Record goods received for SKU: stock up, waiting orders served oldest first."""
    if key is None:
        key = f"receipt-{uuid.uuid4().hex}"
        # On stderr, so the JSON on stdout stays readable by scripts.
        typer.echo(f"Idempotency-Key: {key} (repeat with --key {key})", err=True)
    print_json(
        call_api(
            "POST",
            "/purchasing/receipts",
            role="purchasing",
            body={"sku": sku, "quantity": quantity},
            headers={"Idempotency-Key": key},
        )
    )


@inventory_app.command("list")
def inventory_list() -> None:
    table = Table(title="inventory")
    for column in ("sku", "on hand", "reserved", "available", "reorder point", "open request"):
        table.add_column(column)
    for s in call_api_pages("/inventory", role="admin"):
        table.add_row(
            s["sku"],
            str(s["on_hand"]),
            str(s["reserved"]),
            str(s["available"]),
            str(s["reorder_point"]),
            str(s["open_purchase_request"] or ""),
        )
    console.print(table)


@inventory_app.command("check")
def inventory_check() -> None:
    """Prove on hand, reserved and the reservation rows agree for every SKU, and that no
    cancelled, rejected or shipped order still holds stock or a queue place. Exit 1 if not."""
    from db.pool import create_pool
    from db.repositories.inventory import invariant_violations, leaks

    settings = get_settings()
    if not settings.database_url:
        raise typer.BadParameter("DATABASE_URL is not set")

    async def check() -> tuple[list[Any], list[Any]]:
        pool = await create_pool(settings.database_url or "", min_size=1, max_size=1)
        try:
            return list(await invariant_violations(pool)), list(await leaks(pool))
        finally:
            await pool.close()

    violations, leaked = asyncio.run(check())
    for v in violations:
        console.print(
            f"[red]{v['sku']}: on hand {v['on_hand']}, reserved {v['reserved']}, held rows {v['held']}[/]"
        )
    for leak in leaked:
        console.print(
            f"[red]{leak['order_id']} ({leak['status']}) still has a {leak['what']} of {leak['sku']}[/]"
        )
    if violations or leaked:
        raise typer.Exit(1)
    console.print(
        "[green]inventory consistent: every SKU's reserved count equals its held reservations, "
        "and no closed order holds stock[/]"
    )


# ---------------------------------------------------------------- load
@app.command()
def load(
    n: Annotated[int, typer.Option("-n", help="How many orders")] = 100,
    continuous: Annotated[bool, typer.Option(help="Keep placing orders until stopped")] = False,
    rate: Annotated[float, typer.Option(help="Orders per second when continuous")] = 1.0,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Place realistic demo orders through the API, with a progress bar."""
    from app.datagen.orders import demo_order

    rng = random.Random(seed or None)
    prefix = f"L{int(time.time())}-{uuid.uuid4().hex[:4]}"
    if continuous:
        i = 0
        while True:
            i += 1
            order = demo_order(rng, f"{prefix}-{i}")
            _call("POST", "/orders", "storefront", order.model_dump(mode="json"))
            time.sleep(1 / rate)
    with Progress(console=console) as progress:
        task = progress.add_task("placing orders", total=n)
        for i in range(1, n + 1):
            order = demo_order(rng, f"{prefix}-{i}")
            _call("POST", "/orders", "storefront", order.model_dump(mode="json"))
            progress.advance(task)


def _report_time(value: str, *, end: bool) -> datetime:
    """A date (a whole day: `--to` includes it) or an ISO time; UTC unless it says otherwise."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD) or ISO time") from exc
    if end and len(value) == 10:
        parsed += timedelta(days=1)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
def report(
    from_: Annotated[str | None, typer.Option("--from", help="Start (date or ISO time)")] = None,
    to: Annotated[str | None, typer.Option("--to", help="End, inclusive day")] = None,
    compare_from: Annotated[str | None, typer.Option("--compare-from")] = None,
    compare_to: Annotated[str | None, typer.Option("--compare-to")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    html: Annotated[Path | None, typer.Option("--html", help="Write an HTML page")] = None,
    around: Annotated[
        int | None,
        typer.Option(
            "--around",
            metavar="CHANGE_ID",
            help="Instead: the touched steps' KPIs in equal windows before and after this "
            "process change (`orderflow process-changes list`).",
        ),
    ] = None,
    window_hours: Annotated[
        float | None,
        typer.Option(
            "--window-hours",
            min=0.001,
            help="With --around: each window's length (default 7 days).",
        ),
    ] = None,
) -> None:
    """KPIs of the orders placed in a period (default: the last 7 days), optionally beside
    an earlier period (--compare-from/--compare-to): table, JSON or HTML with charts."""
    from app.report import build_report, print_report, report_html, report_json
    from db.pool import connect

    settings = get_settings()
    if not settings.database_url:
        raise typer.BadParameter("DATABASE_URL is not set")
    if around is not None:
        from app.report_around import run_around

        window = timedelta(hours=window_hours) if window_hours else settings.process_change_window
        code = run_around(
            settings.database_url,
            around,
            window=window,
            minimum_orders=settings.process_change_min_orders,
            as_json=as_json,
            console=console,
        )
        raise typer.Exit(code)
    end = _report_time(to, end=True) if to else datetime.now(UTC)
    start = _report_time(from_, end=False) if from_ else end - timedelta(days=7)
    if (compare_from is None) != (compare_to is None):
        raise typer.BadParameter("give both --compare-from and --compare-to")
    if start >= end:
        raise typer.BadParameter("--from must be before --to")

    async def build() -> tuple[Any, Any]:
        conn = await connect(settings.database_url or "")
        try:
            before = None
            if compare_from and compare_to:
                before = await build_report(
                    conn,
                    _report_time(compare_from, end=False),
                    _report_time(compare_to, end=True),
                )
            return await build_report(conn, start, end), before
        finally:
            await conn.close()

    current, before = asyncio.run(build())
    if html is not None:
        html.write_text(report_html(current, before), encoding="utf-8")
    if as_json:
        print(json.dumps(report_json(current, before), indent=2))
    else:
        print_report(console, current, before)
        if html is not None:
            console.print(f"HTML report written to {html}")


@app.command()
def docs(
    check: Annotated[
        bool, typer.Option("--check", help="Fail when the file differs from the code.")
    ] = False,
    output: Annotated[Path | None, typer.Option(help="Where the handbook goes.")] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="Add each step's open process issues and last change from the database "
            "(written to .orderflow/process-live.md unless --output says otherwise).",
        ),
    ] = False,
) -> None:
    """Write the process handbook (flowchart, responsibilities, standards) from the code."""
    from app.handbook import handbook_is_current, render_handbook, write_handbook

    if live:
        from app.handbook_live import read_step_life
        from db.pool import connect

        settings = get_settings()
        if not settings.database_url:
            console.print("[red]DATABASE_URL is not set (nor a running stack's)[/]")
            raise typer.Exit(2)

        async def read() -> str:
            conn = await connect(settings.database_url or "")
            try:
                return render_handbook(
                    settings.order_policy, await read_step_life(conn), settings.return_policy
                )
            finally:
                await conn.close()

        target = output or Path(".orderflow/process-live.md")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(asyncio.run(read()), encoding="utf-8")
        console.print(f"{target} written")
        return
    output = output or Path("docs/process.md")

    if check:
        if not handbook_is_current(output):
            console.print(f"[red]{output} differs from the code: run `orderflow docs`[/]")
            raise typer.Exit(1)
        console.print(f"{output} is current")
        return
    console.print(f"{output} {'written' if write_handbook(output) else 'unchanged'}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
