"""The process handbook, `docs/process.md`, written from the step definitions in
`orderflow/process.py`: the flowchart (Mermaid), the responsibility table and each step's
operating standard, the same for the return process, and the department queues.
`orderflow docs --check` fails when the file and the code disagree.

`orderflow docs --live` writes the same handbook with each step's life as the database has
it now (`StepLife`: its open process issues and its last process change), for the improvement
meeting; the committed file stays the code's alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from orderflow.models import SHIPPED_OR_LATER, OrderPolicy, OrderStatus
from orderflow.models.activity_names import ActivityName
from orderflow.models.returns import ReturnPolicy
from orderflow.process import (
    CANCELLATION,
    DEPARTMENTS,
    MARKETPLACE_ACTIVITIES,
    PSP_ACTIVITIES,
    RETURN_PSP_ACTIVITIES,
    RETURN_SERVICE_ACTIVITIES,
    RETURN_STAGES,
    SERVICE_ACTIVITIES,
    STATUS_SLA,
    STEPS,
    ProcessStep,
    ReturnStage,
    Timer,
    party_name,
    policy_value,
    queue_owner,
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
    "return_decision": "returns outside the automatic rules (`REQUESTED`) awaiting customer "
    "service's decision, due `return_decision_sla` after the request",
    "return_inspection": "returned parcels back at the warehouse (`ARRIVED`) awaiting "
    "inspection, due the return policy's `inspection_sla` after arrival",
    "pre_order": "orders waiting for a pre-sale product's release, due at the release date",
}

# Activities run as regular activities (with their own retries), by whom they call.
_REGULAR = SERVICE_ACTIVITIES | RETURN_SERVICE_ACTIVITIES
_PSP = PSP_ACTIVITIES | RETURN_PSP_ACTIVITIES
_CARRIER = _REGULAR - _PSP - MARKETPLACE_ACTIVITIES


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


Stage = ProcessStep | ReturnStage


def _number(stage: Stage) -> int:
    return stage.number if isinstance(stage, ReturnStage) else int(stage.step)


def timer_value(timer: Timer, policy: OrderPolicy, returns: ReturnPolicy) -> timedelta | int:
    """A timer's default: from the order's policy, the return's policy, or the settings."""
    if timer.source == "settings":
        return _settings_default(timer.policy_field)
    if timer.source == "return":
        value = getattr(returns, timer.policy_field)
        assert isinstance(value, timedelta)
        return value
    return policy_value(policy, timer.policy_field)


def _stage_nodes(
    stage: Stage, prefix: str, nxt: str, policy: OrderPolicy, returns: ReturnPolicy
) -> list[str]:
    """One step's (or return stage's) box, its decisions and their detours, and its timers;
    node ids start with `prefix`, so two charts never share one."""
    n = _number(stage)
    s = f"{prefix}S{n}"
    lines = [f'    {s}["{_label(_title(stage))}<br/>{_runs(stage)}"]']
    if not stage.decisions:
        lines.append(f'    {s} -->|"{stage.milestone}"| {nxt}')
    for d_index, decision in enumerate(stage.decisions):
        d = f"{prefix}D{n}{'abc'[d_index]}"
        detour = f"{d}x"
        normal, exceptional = ("no", "yes") if decision.detour_when else ("yes", "no")
        lines.append(f'    {s} --> {d}{{"{_label(decision.question)}"}}')
        lines.append(f'    {d} -->|"{exceptional}"| {detour}["{_label(decision.detour)}"]')
        if decision.rejoin != "end":
            back = d if decision.rejoin == "retry" else nxt
            lines.append(f'    {detour} -->|"{_label(decision.rejoin_label)}"| {back}')
        if decision.exit is not None:
            label, status = decision.exit
            lines.append(f'    {detour} -->|"{_label(label)}"| {prefix}E{n}(["{status}"])')
        lines.append(f'    {d} -->|"{normal}: {stage.milestone}"| {nxt}')
    for t_index, timer in enumerate(stage.timers):
        t = f"{prefix}T{n}{'abcdef'[t_index]}"
        value = format_duration(timer_value(timer, policy, returns))
        kind = "queue SLA" if timer.source == "settings" else "timer"
        lines.append(f'    {t}>"{kind} {timer.policy_field} = {value}"]')
        lines.append(f'    {t} -.->|"{_label(timer.on_expiry)}"| {s}')
    return lines


def flowchart(policy: OrderPolicy) -> list[str]:
    lines = ["```mermaid", "flowchart TD", '    start(["Order placed"]) --> S1']
    for index, step in enumerate(STEPS):
        nxt = f"S{int(step.step) + 1}" if index + 1 < len(STEPS) else "done"
        lines += _stage_nodes(step, "", nxt, policy, ReturnPolicy())
    lines.append('    done(["order closed; review invited"])')
    cancellable = [s for s in STEPS if not set(s.statuses) & SHIPPED_OR_LATER]
    lines.append(
        f'    CAN["{_label(CANCELLATION.name)}: undo in reverse<br/>{CANCELLATION.milestone}"]'
    )
    for step in cancellable:
        lines.append(f'    S{int(step.step)} -.->|"cancel"| CAN')
    lines.append("```")
    return lines


def return_flowchart(returns: ReturnPolicy) -> list[str]:
    window = format_duration(returns.window)
    lines = [
        "```mermaid",
        "flowchart TD",
        f'    Rstart(["Return asked for, within window = {window} of delivery"]) --> RS1',
    ]
    for index, stage in enumerate(RETURN_STAGES):
        nxt = f"RS{stage.number + 1}" if index + 1 < len(RETURN_STAGES) else "Rdone"
        lines += _stage_nodes(stage, "R", nxt, OrderPolicy(), returns)
    lines += ['    Rdone(["refunded; the return is over"])', "```"]
    return lines


def _runs(step: Stage) -> str:
    return " / ".join(str(s) for s in step.statuses)


def _title(step: Stage) -> str:
    if isinstance(step, ReturnStage):
        return f"R{step.number}. {step.name}"
    return step.name if step is CANCELLATION else f"{int(step.step)}. {step.name}"


def responsibility_table(stages: tuple[Stage, ...] = (*STEPS, CANCELLATION)) -> list[str]:
    head = "stage" if stages and isinstance(stages[0], ReturnStage) else "step"
    lines = [
        f"| {head} | does | approves | informed | human tasks (workflow message) |",
        "|---|---|---|---|---|",
    ]
    for step in stages:
        tasks = "; ".join(
            f"{party_name(t.who)}: {t.what} ({', '.join(f'`{m}`' for m in t.messages)})"
            for t in step.human_tasks
        )
        lines.append(
            f"| {_title(step)} | {party_name(step.does)} | {_parties(step.approves)} "
            f"| {_parties(step.informed)} | {tasks or '—'} |"
        )
    return lines


def _runs_as(activities: tuple[ActivityName, ...]) -> str:
    local = [f"`{a}`" for a in activities if a not in _REGULAR]
    service = [f"`{a}`" for a in activities if a in _CARRIER]
    marketplace = [f"`{a}`" for a in activities if a in MARKETPLACE_ACTIVITIES]
    psp = [f"`{a}`" for a in activities if a in _PSP]
    runs = []
    if local:
        runs.append("local activities (PostgreSQL) " + ", ".join(local))
    if service:
        runs.append("activities calling the carrier " + ", ".join(service))
    if psp:
        runs.append("activities calling the payment service provider " + ", ".join(psp))
    if marketplace:
        runs.append("activities calling the order's marketplace " + ", ".join(marketplace))
    return f"- **Runs as**: {'; '.join(runs)}; idempotent: a retry changes nothing"


def _common_facts(step: Stage) -> list[str]:
    """Statuses, responsibility, inputs and outputs, how it runs, its human tasks, decisions."""
    lines = [f"### {_title(step)}", "", step.purpose, ""]
    lines.append(f"- **Statuses set**: {', '.join(f'`{s}`' for s in step.statuses)}")
    lines.append(f"- **Done when**: `{step.milestone}`")
    lines.append(
        f"- **Responsible**: {party_name(step.does)}; approves: {_parties(step.approves)}; "
        f"informed: {_parties(step.informed)}"
    )
    lines.append("- **Inputs**: " + "; ".join(step.inputs))
    lines.append("- **Outputs**: " + "; ".join(step.outputs))
    lines.append(_runs_as(step.activities))
    for task in step.human_tasks:
        messages = ", ".join(f"`{m}`" for m in task.messages)
        lines.append(f"- **Human task**: {party_name(task.who)}: {task.what} ({messages})")
    for decision in step.decisions:
        lines.append(f"- **Decision**: {decision.question} — {decision.detour}")
    return lines


def _queue_lines(step: Stage) -> list[str]:
    return [
        f"- **Waits in**: the {queue_owner(kind).name} queue (`{kind}`): {_QUEUE_SOURCES[kind]}"
        for kind in step.queues
    ]


def operating_standard(step: ProcessStep, policy: OrderPolicy) -> list[str]:
    lines = _common_facts(step)
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
    lines += _queue_lines(step)
    lines.append(f"- **Escalation**: {step.escalation}")
    if step.undo:
        lines.append(f"- **Undo**: {step.undo}")
    lines.append("")
    return lines


def return_standard(stage: ReturnStage, returns: ReturnPolicy) -> list[str]:
    lines = _common_facts(stage)
    if stage.timers:
        lines += [
            "- **SLA and timers** (`ReturnPolicy` defaults; settings where marked):",
            "",
            "  | timer | default | what | when it passes |",
            "  |---|---|---|---|",
        ]
        for timer in stage.timers:
            value = format_duration(timer_value(timer, OrderPolicy(), returns))
            name = f"`{timer.policy_field}`" + (" (settings)" if timer.source == "settings" else "")
            lines.append(f"  | {name} | {value} | {timer.what} | {timer.on_expiry} |")
        lines.append("")
    else:
        lines.append("- **SLA**: automatic, done in seconds")
    lines += _queue_lines(stage)
    lines.append(f"- **Escalation**: {stage.escalation}")
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


def render_handbook(
    policy: OrderPolicy | None = None,
    life: StepLife | None = None,
    returns: ReturnPolicy | None = None,
) -> str:
    policy = policy or OrderPolicy()
    returns = returns or ReturnPolicy()
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
        "## Returns",
        "",
        "Each return is one durable Temporal workflow (`return-<return_id>`) beside its",
        "order's, which it does not touch. Durations are the `ReturnPolicy` defaults; each",
        "return carries the policy it started with (`ORDERFLOW_RETURN_POLICY` sets it for new",
        "returns).",
        "",
        *return_flowchart(returns),
        "",
        *responsibility_table(RETURN_STAGES),
        "",
    ]
    for stage in RETURN_STAGES:
        lines += return_standard(stage, returns)
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
