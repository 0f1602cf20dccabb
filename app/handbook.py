"""The process handbook, `docs/process.md`, written from the step definitions in
`orderflow/process.py`: the flowchart (Mermaid), the responsibility table and each step's
operating standard. `orderflow docs --check` fails when the file and the code disagree.

`orderflow docs --live` writes the same handbook with each step's life as the database has
it now (`StepLife`: its open process issues and its last process change), for the improvement
meeting; the committed file stays the code's alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from orderflow.models import SHIPPED_OR_LATER, OrderPolicy, OrderStatus
from orderflow.process import (
    CANCELLATION,
    DEPARTMENTS,
    MARKETPLACE_ACTIVITIES,
    PSP_ACTIVITIES,
    SERVICE_ACTIVITIES,
    STATUS_SLA,
    STEPS,
    ProcessStep,
    party_name,
    policy_value,
    status_sla,
)
from orderflow.settings import Settings

DEFAULT_PATH = Path("docs/process.md")


@dataclass(frozen=True)
class LastChange:
    change_id: int
    setting: str
    changed_at: datetime
    changed_by: str


@dataclass(frozen=True)
class StepLife:
    """What the database says of each step now: open process issues, the last change."""

    open_issues: dict[int, int] = field(default_factory=dict)
    last_changes: dict[int, LastChange] = field(default_factory=dict)

    def lines(self, step: int) -> list[str]:
        issues = self.open_issues.get(step, 0)
        change = self.last_changes.get(step)
        last = (
            f"#{change.change_id} `{change.setting}` on {change.changed_at:%Y-%m-%d} "
            f"by {change.changed_by}"
            if change
            else "none recorded"
        )
        noun = "issue" if issues == 1 else "issues"
        return [f"- **Now**: {issues} open process {noun}; last process change: {last}"]


_QUEUE_SOURCES = {
    "review_task": "review tasks (open or escalated), due at the review SLA",
    "pick_task": "pick tasks (open or picked), due at the pick SLA",
    "purchase_request": "open purchase requests, due `purchase_request_sla` after they opened",
    "follow_up": "open delivery follow-ups, due `followup_interval` after they opened",
    "feedback_ticket": "open feedback tickets routed to the department, due `feedback_sla`",
    "failed_mail": "e-mails given up on after `outbox_max_attempts`, due `failed_mail_sla`",
    "unprocessable_order": "orders rejected because a step could never process them, due "
    "`unprocessable_order_sla`",
    "payment_problem": "captures and refunds the PSP failed or refused, not yet sent again, "
    "due `payment_problem_sla`",
    "payment_dispute": "open chargebacks, due `payment_dispute_sla` after they arrived",
    "channel_exception": "orders from a marketplace that could not be mapped (placed after a "
    "correction, or rejected), due `channel_exception_sla` after they arrived",
}


def format_duration(value: timedelta | int) -> str:
    """4 h, 3 d, 1 d 2 h, 90 s; plain counts stay numbers."""
    if isinstance(value, int):
        return str(value)
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0 s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts)


def _settings_default(name: str) -> timedelta:
    # Field defaults, not the environment: the handbook must not depend on who generates it.
    value = Settings.model_fields[name].default
    assert isinstance(value, timedelta)
    return value


def _parties(codes: tuple[str, ...]) -> str:
    return ", ".join(party_name(c) for c in codes) or "—"


def _label(text: str) -> str:
    return text.replace('"', "#quot;")


def flowchart(policy: OrderPolicy) -> list[str]:
    lines = ["```mermaid", "flowchart TD", '    start(["Order placed"]) --> S1']
    for index, step in enumerate(STEPS):
        n = int(step.step)
        nxt = f"S{n + 1}" if index + 1 < len(STEPS) else "done"
        done = f'-->|"{step.milestone}"| {nxt}'
        lines.append(f'    S{n}["{n}. {_label(step.name)}<br/>{_runs(step)}"]')
        if not step.decisions:
            lines.append(f"    S{n} {done}")
        for d_index, decision in enumerate(step.decisions):
            d = f"D{n}{'abc'[d_index]}"
            detour = f"{d}x"
            normal, exceptional = ("no", "yes") if decision.detour_when else ("yes", "no")
            lines.append(f'    S{n} --> {d}{{"{_label(decision.question)}"}}')
            lines.append(f'    {d} -->|"{exceptional}"| {detour}["{_label(decision.detour)}"]')
            back = d if decision.rejoin == "retry" else nxt
            lines.append(f'    {detour} -->|"{_label(decision.rejoin_label)}"| {back}')
            if decision.exit is not None:
                label, status = decision.exit
                lines.append(f'    {detour} -->|"{_label(label)}"| E{n}(["{status}"])')
            lines.append(f'    {d} -->|"{normal}: {step.milestone}"| {nxt}')
        for t_index, timer in enumerate(step.timers):
            t = f"T{n}{'abcdef'[t_index]}"
            value = format_duration(policy_value(policy, timer.policy_field))
            lines.append(f'    {t}>"timer {timer.policy_field} = {value}"]')
            lines.append(f'    {t} -.->|"{_label(timer.on_expiry)}"| S{n}')
    lines.append('    done(["order closed; review invited"])')
    cancellable = [s for s in STEPS if not set(s.statuses) & SHIPPED_OR_LATER]
    lines.append(
        f'    CAN["{_label(CANCELLATION.name)}: undo in reverse<br/>{CANCELLATION.milestone}"]'
    )
    for step in cancellable:
        lines.append(f'    S{int(step.step)} -.->|"cancel"| CAN')
    lines.append("```")
    return lines


def _runs(step: ProcessStep) -> str:
    return " / ".join(str(s) for s in step.statuses)


def responsibility_table() -> list[str]:
    lines = [
        "| step | does | approves | informed | human tasks (workflow message) |",
        "|---|---|---|---|---|",
    ]
    for step in (*STEPS, CANCELLATION):
        number = f"{int(step.step)}. " if step is not CANCELLATION else ""
        tasks = "; ".join(
            f"{party_name(t.who)}: {t.what} ({', '.join(f'`{m}`' for m in t.messages)})"
            for t in step.human_tasks
        )
        lines.append(
            f"| {number}{step.name} | {party_name(step.does)} | {_parties(step.approves)} "
            f"| {_parties(step.informed)} | {tasks or '—'} |"
        )
    return lines


def operating_standard(step: ProcessStep, policy: OrderPolicy) -> list[str]:
    number = f"{int(step.step)}. " if step is not CANCELLATION else ""
    lines = [f"### {number}{step.name}", "", step.purpose, ""]
    lines.append(f"- **Statuses set**: {', '.join(f'`{s}`' for s in step.statuses)}")
    lines.append(f"- **Done when**: `{step.milestone}`")
    lines.append(
        f"- **Responsible**: {party_name(step.does)}; approves: {_parties(step.approves)}; "
        f"informed: {_parties(step.informed)}"
    )
    lines.append("- **Inputs**: " + "; ".join(step.inputs))
    lines.append("- **Outputs**: " + "; ".join(step.outputs))
    local = [f"`{a}`" for a in step.activities if a not in SERVICE_ACTIVITIES | PSP_ACTIVITIES]
    carrier = SERVICE_ACTIVITIES - PSP_ACTIVITIES - MARKETPLACE_ACTIVITIES
    service = [f"`{a}`" for a in step.activities if a in carrier]
    marketplace = [f"`{a}`" for a in step.activities if a in MARKETPLACE_ACTIVITIES]
    psp = [f"`{a}`" for a in step.activities if a in PSP_ACTIVITIES]
    runs = []
    if local:
        runs.append("local activities (PostgreSQL) " + ", ".join(local))
    if service:
        runs.append("activities calling the carrier " + ", ".join(service))
    if psp:
        runs.append("activities calling the payment service provider " + ", ".join(psp))
    if marketplace:
        runs.append("activities calling the order's marketplace " + ", ".join(marketplace))
    lines.append(f"- **Runs as**: {'; '.join(runs)}; idempotent: a retry changes nothing")
    for task in step.human_tasks:
        messages = ", ".join(f"`{m}`" for m in task.messages)
        lines.append(f"- **Human task**: {party_name(task.who)}: {task.what} ({messages})")
    for decision in step.decisions:
        lines.append(f"- **Decision**: {decision.question} — {decision.detour}")
    if step.timers:
        lines += [
            "- **SLA and timers** (`OrderPolicy`, defaults):",
            "",
            "  | timer | default | what | when it passes |",
            "  |---|---|---|---|",
        ]
        for timer in step.timers:
            value = format_duration(policy_value(policy, timer.policy_field))
            lines.append(
                f"  | `{timer.policy_field}` | {value} | {timer.what} | {timer.on_expiry} |"
            )
        lines.append("")
    else:
        lines.append("- **SLA**: automatic, done in seconds")
    stuck = [
        f"`{status}` after {_stuck_after(status, policy)}"
        for status in step.statuses
        if status in STATUS_SLA
    ]
    if stuck:
        lines.append("- **Counts as stuck**: " + "; ".join(stuck))
    lines.append(f"- **Escalation**: {step.escalation}")
    if step.undo:
        lines.append(f"- **Undo**: {step.undo}")
    lines.append("")
    return lines


def _stuck_after(status: OrderStatus, policy: OrderPolicy) -> str:
    sla = STATUS_SLA[status]
    allowed = format_duration(
        status_sla(status, policy, _settings_default("stuck_automatic_after"))
    )
    start = "expected delivery + " if sla.after_expected_delivery else ""
    return f"{start}{allowed}"


def status_sla_table(policy: OrderPolicy) -> list[str]:
    lines = [
        "| status | stuck after | default |",
        "|---|---|---|",
    ]
    for status, sla in STATUS_SLA.items():
        lines.append(f"| `{status}` | {sla.describe()} | {_stuck_after(status, policy)} |")
    return lines


def department_table() -> list[str]:
    lines = [
        "| department | who sees the queue | what waits there |",
        "|---|---|---|",
    ]
    for dep in DEPARTMENTS:
        who = f"`{dep.role}`, `admin`" if dep.role else "`admin`"
        what = "; ".join(_QUEUE_SOURCES[q] for q in dep.queues)
        lines.append(f"| {dep.name} (`{dep.code}`) | {who} | {what} |")
    return lines


def render_handbook(policy: OrderPolicy | None = None, life: StepLife | None = None) -> str:
    policy = policy or OrderPolicy()
    lines = [
        "# The order process",
        "",
        "<!-- Generated by `orderflow docs` from orderflow/process.py: do not edit by hand."
        " `orderflow docs --check` (and the test suite) fail when this file and the code"
        " disagree. -->",
        "",
        "Every order is one durable Temporal workflow (`order-<order_id>`) that runs these",
        "eight steps. Durations are the `OrderPolicy` defaults; each order carries the policy",
        "it started with (`ORDERFLOW_ORDER_POLICY` sets it for new orders).",
        "",
        "## Flowchart",
        "",
        *flowchart(policy),
        "",
        "## Who is responsible",
        "",
        *responsibility_table(),
        "",
        "## Operating standard of each step",
        "",
    ]
    for step in STEPS:
        section = operating_standard(step, policy)
        if life is not None:
            # After the step's heading, purpose and facts, before its blank closing line.
            section = [*section[:-1], *life.lines(int(step.step)), section[-1]]
        lines += section
    lines += operating_standard(CANCELLATION, policy)
    lines += [
        "## Department queues",
        "",
        "`GET /departments/{department}/queue` lists what waits on a department now, oldest",
        "first, with how long each item has waited against its SLA.",
        "",
        *department_table(),
        "",
        "## Stuck orders",
        "",
        "`GET /orders/stuck` lists running orders (Temporal visibility: `OrderStatus`,",
        "`ExecutionStatus = 'Running'`) that have stayed in their status longer than this,",
        "counted from the status's event in `order_events`:",
        "",
        *status_sla_table(policy),
        "",
    ]
    return "\n".join(lines)


def write_handbook(path: Path = DEFAULT_PATH) -> bool:
    """Write the handbook; True when the file changed."""
    text = render_handbook()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return True


def handbook_is_current(path: Path = DEFAULT_PATH) -> bool:
    return path.exists() and path.read_text(encoding="utf-8") == render_handbook()
