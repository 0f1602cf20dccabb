"""The order process as data: the eight steps, who does, approves and is informed, each
step's inputs, outputs, timers and escalation, the departments and their queues, and the
service level of every status; beside it the return process, a workflow of its own.

This is the single description the handbook (`orderflow docs` -> docs/process.md), the
department queues, the stuck-order query and the KPI report read. Its words are the
workflow's own: statuses from `OrderStatus` / `STEP_OF_STATUS`, timers by `OrderPolicy`
field name, activities by `ActivityName`, human tasks by the workflow's message names; the
tests check each reference against the code so the two cannot drift apart. The return
stages speak the return workflow's words the same way (`ReturnStatus`, `ReturnPolicy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from orderflow.models import OrderPolicy, OrderStatus, Step
from orderflow.models.activity_names import ActivityName
from orderflow.models.returns import ReturnStatus

CUSTOMER = "customer"

# Activities that call the payment service provider (activities/payments.py): regular
# activities with their own retries, each described at the step it serves.
PSP_ACTIVITIES = frozenset(
    {
        ActivityName.CAPTURE_PAYMENT,
        ActivityName.VOID_PAYMENT,
        ActivityName.REFUND_PAYMENT,
        ActivityName.REAUTHORIZE_PAYMENT,
    }
)
# Activities that tell an order's marketplace of its shipment or cancellation.
MARKETPLACE_ACTIVITIES = frozenset(
    {ActivityName.PUSH_MARKETPLACE_SHIPMENT, ActivityName.PUSH_MARKETPLACE_CANCELLATION}
)
# Activities that call outside services (the carrier's API, the PSP, a marketplace):
# regular activities with their own retries. Every other activity touches only PostgreSQL
# and runs as a local activity.
SERVICE_ACTIVITIES = (
    frozenset({ActivityName.BOOK_SHIPMENT, ActivityName.FOLLOW_UP_DELIVERY})
    | PSP_ACTIVITIES
    | MARKETPLACE_ACTIVITIES
)
# The return workflow's regular activities: the carrier's return label, the refund at the PSP.
RETURN_CARRIER_ACTIVITIES = frozenset({ActivityName.BOOK_RETURN_LABEL})
RETURN_PSP_ACTIVITIES = frozenset({ActivityName.REFUND_RETURN})
RETURN_SERVICE_ACTIVITIES = RETURN_CARRIER_ACTIVITIES | RETURN_PSP_ACTIVITIES


@dataclass(frozen=True)
class Department:
    code: str  # as in the `departments` table
    name: str
    # The operator role that works this department's queue (admin always may); None: admin only.
    role: str | None
    # What waits on the department: kinds of queue items (see db/repositories/queues.py).
    queues: tuple[str, ...]


# The departments with a queue, in the order the operator page shows them. Quality, finance
# and customer service have no operator role of their own (the API's roles are fixed), so
# their queues open to admin.
DEPARTMENTS: tuple[Department, ...] = (
    Department("risk", "Risk team", "reviewer", ("review_task", "feedback_ticket")),
    Department(
        "warehouse", "Warehouse", "warehouse", ("pick_task", "return_inspection", "feedback_ticket")
    ),
    Department(
        "purchasing",
        "Purchasing",
        "purchasing",
        ("purchase_request", "pre_order", "feedback_ticket"),
    ),
    Department("logistics", "Logistics", "logistics", ("follow_up", "feedback_ticket")),
    Department("quality", "Quality", None, ("feedback_ticket",)),
    Department(
        "finance", "Finance", None, ("feedback_ticket", "payment_problem", "payment_dispute")
    ),
    Department(
        "customer_service",
        "Customer service",
        None,
        (
            "feedback_ticket",
            "failed_mail",
            "unprocessable_order",
            "channel_exception",
            "return_decision",
        ),
    ),
)

# Departments named in the responsibility table besides those with a queue.
OTHER_PARTIES: dict[str, str] = {
    "risk_supervisor": "Risk supervisor",
    "logistics_supervisor": "Logistics supervisor",
    "sales": "Sales (wholesale)",
    CUSTOMER: "The customer",
}


def department(code: str) -> Department | None:
    return next((d for d in DEPARTMENTS if d.code == code), None)


def party_name(code: str) -> str:
    found = department(code)
    return found.name if found else OTHER_PARTIES[code]


def queue_owner(kind: str) -> Department:
    """The department whose queue holds items of `kind`."""
    return next(d for d in DEPARTMENTS if kind in d.queues)


@dataclass(frozen=True)
class Timer:
    """A wait of the workflow that drives a service level; `policy_field` names its duration."""

    policy_field: str
    what: str
    on_expiry: str
    activity: ActivityName | None = None
    # Where `policy_field` is: the order's `OrderPolicy`, the return's `ReturnPolicy`, or
    # `Settings` (a queue's service level that no workflow timer keeps).
    source: Literal["order", "return", "settings"] = "order"


@dataclass(frozen=True)
class HumanTask:
    what: str
    who: str
    # The workflow's message names (Update or signal) that carry the person's answer.
    messages: tuple[str, ...]


@dataclass(frozen=True)
class Decision:
    """A branch of the flow: one answer takes the normal path, the other a detour."""

    question: str
    # The answer that leads to the detour.
    detour_when: bool
    detour: str
    # After the detour: go on to the step's milestone, ask the question again, or only
    # end (then `exit` says how).
    rejoin: Literal["continue", "retry", "end"]
    rejoin_label: str
    # A detour may also end the order (or the return): (label, terminal status).
    exit: tuple[str, OrderStatus | ReturnStatus] | None = None


@dataclass(frozen=True)
class ProcessStep:
    step: Step
    name: str
    purpose: str
    statuses: tuple[OrderStatus, ...]
    # The status that marks the step done on the normal path (the KPI report's milestone).
    milestone: OrderStatus
    does: str
    approves: tuple[str, ...]
    informed: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    activities: tuple[ActivityName, ...]
    timers: tuple[Timer, ...] = ()
    decisions: tuple[Decision, ...] = ()
    human_tasks: tuple[HumanTask, ...] = ()
    escalation: str = "none: an automatic step, retried until PostgreSQL answers"
    undo: str = ""
    # Kinds of department queue items the step's waits appear as (`Department.queues`).
    queues: tuple[str, ...] = ()


STEPS: tuple[ProcessStep, ...] = (
    ProcessStep(
        step=Step.GENERATION,
        name="Order generation",
        purpose="Validate the order, persist it with its lines and payment, confirm by e-mail.",
        statuses=(OrderStatus.RECEIVED,),
        milestone=OrderStatus.RECEIVED,
        does="customer_service",
        approves=("finance",),
        informed=(CUSTOMER,),
        inputs=(
            "the order from web, mobile or marketplace (the storefront's order JSON)",
            "its payment reference",
        ),
        outputs=(
            "order, lines and payment rows",
            "event `order_received`",
            "confirmation e-mail (outbox)",
        ),
        activities=(ActivityName.RECORD_ORDER,),
        undo="refund the payment and tell the customer (cancellation)",
        queues=("channel_exception",),
    ),
    ProcessStep(
        step=Step.CLASSIFICATION,
        name="Classification & assignment",
        purpose="Derive the order type from the data-driven rules and assign its department.",
        statuses=(OrderStatus.CLASSIFIED,),
        milestone=OrderStatus.CLASSIFIED,
        does="customer_service",
        approves=("sales",),
        informed=("warehouse", "purchasing", "logistics"),
        inputs=("the recorded order", "the catalogue (pre-sale items)", "classification rules"),
        outputs=(
            "order type and responsible department on the order",
            "event `order_classified`",
            "notice to the department's lead",
        ),
        activities=(ActivityName.CLASSIFY_ORDER,),
    ),
    ProcessStep(
        step=Step.REVIEW,
        name="Review",
        purpose="Score the order's risk from its features and history; pass normal orders, "
        "hold anomalous ones for a reviewer.",
        statuses=(OrderStatus.PENDING_REVIEW, OrderStatus.APPROVED, OrderStatus.REJECTED),
        milestone=OrderStatus.APPROVED,
        does="risk",
        approves=("risk",),
        informed=("risk_supervisor", "finance", CUSTOMER),
        inputs=(
            "the order",
            "the customer's and shop's order history",
            "risk weights and threshold (settings)",
        ),
        outputs=(
            "risk score and reasons on the order",
            "a review task for flagged orders",
            "event `auto_approved`, `review_flagged`, `review_approved` or `review_rejected`",
            "refund and e-mail when rejected",
        ),
        activities=(
            ActivityName.ASSESS_RISK,
            ActivityName.ESCALATE_REVIEW,
            ActivityName.RECORD_REVIEW_DECISION,
        ),
        timers=(
            Timer(
                "review_sla",
                "a flagged order waits for a reviewer",
                "the risk supervisor is notified",
                ActivityName.ESCALATE_REVIEW,
            ),
            Timer(
                "review_deadline",
                "final deadline of the review",
                'the order is rejected ("review_timeout") and refunded',
                ActivityName.RECORD_REVIEW_DECISION,
            ),
        ),
        decisions=(
            Decision(
                "Flagged?",
                detour_when=True,
                detour="PENDING_REVIEW: a reviewer decides",
                rejoin="continue",
                rejoin_label="approve",
                exit=("reject, or review_deadline passes", OrderStatus.REJECTED),
            ),
        ),
        human_tasks=(
            HumanTask(
                "approve or reject a flagged order (a note is required to reject)",
                "risk",
                ("decide_review",),
            ),
        ),
        escalation="after review_sla the risk supervisor is notified; after review_deadline "
        "the order is rejected and refunded",
        undo="a rejected order is refunded in full",
        queues=("review_task",),
    ),
    ProcessStep(
        step=Step.INVENTORY,
        name="Inventory confirmation",
        purpose="Reserve every line atomically; when short, raise a purchase request and wait "
        "for the goods.",
        statuses=(OrderStatus.BACKORDERED, OrderStatus.RESERVED),
        milestone=OrderStatus.RESERVED,
        does="warehouse",
        approves=("purchasing",),
        informed=(CUSTOMER,),
        inputs=("the order's lines", "stock on hand and reserved per SKU"),
        outputs=(
            "reservations (all lines or none)",
            "for a shortage: a backorder and one open purchase request per SKU",
            "event `stock_reserved` or `backordered`",
            "backorder notice and reminders to the customer",
        ),
        activities=(
            ActivityName.RESERVE_STOCK,
            ActivityName.REMIND_BACKORDER,
            ActivityName.REAUTHORIZE_PAYMENT,
            ActivityName.HOLD_FOR_RELEASE,
            ActivityName.MOVE_RELEASE,
            ActivityName.RELEASE_PRE_ORDER,
        ),
        timers=(
            Timer(
                "authorization_renewal_margin",
                "before an authorised payment lapses while the order waits uncaptured",
                "the PSP is asked to renew it; refused, the order is cancelled and the "
                "customer told",
                ActivityName.REAUTHORIZE_PAYMENT,
            ),
            Timer(
                "backorder_reminder_interval",
                "a backordered order waits for stock",
                "the customer is reminded; the reservation is tried again",
                ActivityName.REMIND_BACKORDER,
            ),
            Timer(
                "backorder_cancel_offer_after",
                "total wait before the customer may cancel at no cost",
                "reminders offer cancellation",
                ActivityName.REMIND_BACKORDER,
            ),
        ),
        decisions=(
            Decision(
                "A pre-order whose product is not released yet?",
                detour_when=True,
                detour="APPROVED, awaiting release: wait, without reserving, until the release "
                "date (purchasing may move it; the customer is told each time)",
                rejoin="continue",
                rejoin_label="released",
            ),
            Decision(
                "Short of stock?",
                detour_when=True,
                detour="BACKORDERED: purchase request raised; wait for the goods",
                rejoin="retry",
                rejoin_label="stock received",
            ),
        ),
        human_tasks=(
            HumanTask("record goods received for a SKU", "purchasing", ("stock_received",)),
            HumanTask(
                "move the release date of a pre-sale product (its pre-orders wait for it)",
                "purchasing",
                ("move_release",),
            ),
        ),
        escalation="reminders to the customer every backorder_reminder_interval; after "
        "backorder_cancel_offer_after they offer cancellation; a pre-order still waiting after "
        "its release date is overdue in purchasing's queue",
        undo="release the reservations and withdraw the order's share of a purchase request",
        queues=("purchase_request", "pre_order"),
    ),
    ProcessStep(
        step=Step.PICKING_PACKING,
        name="Picking & packing",
        purpose="Open a pick task; the warehouse reports picked, then packed with the weight.",
        statuses=(OrderStatus.PICKING, OrderStatus.PACKED),
        milestone=OrderStatus.PACKED,
        does="warehouse",
        approves=("warehouse",),
        informed=("logistics",),
        inputs=("reserved lines with bin locations",),
        outputs=(
            "pick task (picked, packed, parcel weight)",
            "events `pick_task_opened`, `picked`, `packed`",
        ),
        activities=(
            ActivityName.OPEN_PICK_TASK,
            ActivityName.NOTIFY_PICK_OVERDUE,
            ActivityName.RECORD_PICKED,
            ActivityName.RECORD_PACKED,
        ),
        timers=(
            Timer(
                "pick_sla",
                "the pick task waits for the warehouse",
                "the warehouse lead is notified",
                ActivityName.NOTIFY_PICK_OVERDUE,
            ),
        ),
        human_tasks=(
            HumanTask("report the order picked", "warehouse", ("report_picked",)),
            HumanTask("report the parcel packed, with its weight", "warehouse", ("report_packed",)),
        ),
        escalation="after pick_sla the warehouse lead is notified",
        undo="the pick task is cancelled",
        queues=("pick_task",),
    ),
    ProcessStep(
        step=Step.DELIVERY,
        name="Delivery arrangement",
        purpose="Choose the best carrier for destination, weight and service level; book the "
        "shipment; send tracking details.",
        statuses=(OrderStatus.SHIPPED,),
        milestone=OrderStatus.SHIPPED,
        does="logistics",
        approves=("logistics",),
        informed=(CUSTOMER,),
        inputs=("the packed parcel's weight", "destination and service level", "carrier rates"),
        outputs=(
            "shipment with carrier, tracking number, delivery note, expected delivery",
            "event `shipped`",
            "shipping e-mail with tracking details",
        ),
        activities=(
            ActivityName.BOOK_SHIPMENT,
            ActivityName.HOLD_SHIPMENT,
            ActivityName.CAPTURE_PAYMENT,
            ActivityName.PUSH_MARKETPLACE_SHIPMENT,
        ),
        human_tasks=(
            HumanTask(
                "retry the booking of a parcel no carrier took (it waits PACKED meanwhile)",
                "logistics",
                ("retry_booking",),
            ),
            HumanTask(
                "retry the capture of a payment the PSP refused (the parcel waits PACKED "
                "meanwhile), or cancel the order",
                "finance",
                ("retry_capture",),
            ),
        ),
        escalation="the booking is retried with backoff while the carrier does not answer; "
        "a definite refusal (no carrier takes the parcel) holds it at PACKED, notifies "
        "logistics, and waits for a retried booking or a cancel",
        undo="none: from the hand-over to the carrier on a cancel is refused",
        queues=("payment_problem",),
    ),
    ProcessStep(
        step=Step.TRACKING,
        name="Tracking & feedback",
        purpose="Apply the carrier's tracking events; follow up a late parcel with the "
        "carrier, the customer and logistics.",
        statuses=(OrderStatus.IN_TRANSIT, OrderStatus.OUT_FOR_DELIVERY, OrderStatus.DELIVERED),
        milestone=OrderStatus.DELIVERED,
        does="logistics",
        approves=("logistics_supervisor",),
        informed=(CUSTOMER, "customer_service", "quality"),
        inputs=("signed tracking webhooks from the carrier", "customer feedback"),
        outputs=(
            "tracking events and shipment status",
            "follow-ups for late parcels",
            "feedback tickets routed to a department",
        ),
        activities=(
            ActivityName.RECORD_TRACKING,
            ActivityName.FOLLOW_UP_DELIVERY,
            ActivityName.OPEN_LOST_PARCEL_CASE,
            ActivityName.TAKE_REPLACEMENT_STOCK,
            ActivityName.REFUND_LOST_PARCEL,
            ActivityName.RECORD_FEEDBACK,
        ),
        timers=(
            Timer(
                "delivery_grace",
                "not delivered by the expected date plus this grace",
                "a follow-up: ask the carrier, tell the customer, open a follow-up for logistics",
                ActivityName.FOLLOW_UP_DELIVERY,
            ),
            Timer(
                "followup_interval",
                "between two follow-ups of the same parcel",
                "another follow-up",
                ActivityName.FOLLOW_UP_DELIVERY,
            ),
            Timer(
                "followup_escalate_after",
                "follow-ups before the logistics supervisor is involved",
                "follow-ups are escalated",
                ActivityName.FOLLOW_UP_DELIVERY,
            ),
            Timer(
                "followup_max_attempts",
                "follow-ups before a parcel that never arrives counts as lost",
                "a lost-parcel case: logistics reships or refunds",
                ActivityName.OPEN_LOST_PARCEL_CASE,
            ),
            Timer(
                "continue_as_new_history_length",
                "events in one run's history while the parcel is under way",
                "the order continues as a new run with its state",
            ),
        ),
        decisions=(
            Decision(
                "Delivered by expected delivery + grace?",
                detour_when=False,
                detour="follow-up: ask the carrier, tell the customer, open a follow-up",
                rejoin="retry",
                rejoin_label="wait followup_interval",
            ),
            Decision(
                "Lost (carrier says LOST, or followup_max_attempts reached)?",
                detour_when=True,
                detour="lost-parcel case: logistics reships or refunds",
                rejoin="retry",
                rejoin_label="reship: replacement booked",
                exit=("refund", OrderStatus.CANCELLED),
            ),
        ),
        human_tasks=(
            HumanTask("carrier tracking events", "logistics", ("tracking_event",)),
            HumanTask(
                "reship (replacement goods, new booking) or refund a lost parcel",
                "logistics",
                ("resolve_lost_parcel",),
            ),
            HumanTask(
                "feedback (delivery, product, payment, other), answered with a ticket number",
                CUSTOMER,
                ("submit_feedback",),
            ),
            HumanTask(
                "resolve a feedback ticket (the ticket's department)",
                "customer_service",
                ("feedback_resolved",),
            ),
        ),
        escalation="a follow-up after expected delivery + delivery_grace, then every "
        "followup_interval; from attempt followup_escalate_after on, escalated; a parcel the "
        "carrier reports lost, or still missing after followup_max_attempts, becomes a case "
        "logistics resolves",
        queues=("follow_up",),
    ),
    ProcessStep(
        step=Step.COMPLETION,
        name="Completion & review",
        purpose="Complete the delivered order after a quiet period and invite a review.",
        statuses=(OrderStatus.COMPLETED,),
        milestone=OrderStatus.COMPLETED,
        does="customer_service",
        approves=("customer_service",),
        informed=(CUSTOMER, "quality"),
        inputs=("the delivered order",),
        outputs=("event `order_completed`", "review invitation", "stored reviews"),
        activities=(ActivityName.COMPLETE_ORDER, ActivityName.RECORD_PRODUCT_REVIEW),
        timers=(
            Timer(
                "quiet_period",
                "after delivery, time for the customer to object",
                "the order is completed, unless a delivery or product complaint made "
                "meanwhile is still open (then once it is resolved)",
                ActivityName.COMPLETE_ORDER,
            ),
            Timer(
                "review_window",
                "after completion, reviews (and feedback) are accepted",
                "reviews are no longer accepted; the order's process ends",
            ),
        ),
        human_tasks=(
            HumanTask("confirm receipt (completes at once)", CUSTOMER, ("confirm_receipt",)),
            HumanTask("review the order: rating 1–5 and a comment", CUSTOMER, ("submit_review",)),
        ),
    ),
)

CANCELLATION = ProcessStep(
    step=Step.GENERATION,
    name="Cancellation",
    purpose="Before shipment the customer or an operator may cancel: undo in reverse.",
    statuses=(OrderStatus.CANCELLED,),
    milestone=OrderStatus.CANCELLED,
    does="customer_service",
    approves=("customer_service",),
    informed=(CUSTOMER, "finance"),
    inputs=("a cancel request with a reason",),
    outputs=(
        "reservations released, purchase request share withdrawn",
        "refund and e-mail",
        "event `order_cancelled`",
        "an order no step can process (its data can never be stored): REJECTED with the "
        "reason, undone and refunded the same way, and a task in customer service's queue",
    ),
    activities=(
        ActivityName.CANCEL_ORDER,
        ActivityName.REJECT_UNPROCESSABLE,
        ActivityName.VOID_PAYMENT,
        ActivityName.REFUND_PAYMENT,
        ActivityName.PUSH_MARKETPLACE_CANCELLATION,
    ),
    human_tasks=(HumanTask("cancel with a reason", CUSTOMER, ("cancel", "request_cancel")),),
    escalation="refused with a clear message once shipping has started",
    queues=("unprocessable_order",),
)


def step_of(number: int | Step) -> ProcessStep:
    return STEPS[int(number) - 1]


# ------------------------------------------------------------------ the return process
@dataclass(frozen=True)
class ReturnStage:
    """A stage of a return (workflows/returns.py: one workflow per return, beside its order's),
    described as an order's step is; its timers name `ReturnPolicy` fields or settings."""

    number: int
    name: str
    purpose: str
    statuses: tuple[ReturnStatus, ...]
    # The status that marks the stage done on the normal path.
    milestone: ReturnStatus
    does: str
    approves: tuple[str, ...]
    informed: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    activities: tuple[ActivityName, ...]
    timers: tuple[Timer, ...] = ()
    decisions: tuple[Decision, ...] = ()
    human_tasks: tuple[HumanTask, ...] = ()
    escalation: str = "none: an automatic stage, retried until PostgreSQL answers"
    queues: tuple[str, ...] = ()


RETURN_STAGES: tuple[ReturnStage, ...] = (
    ReturnStage(
        number=1,
        name="Return request & decision",
        purpose="Check the request against the return rules and write it in one transaction; "
        "approve it at once, or let customer service decide one outside the rules.",
        statuses=(ReturnStatus.REQUESTED, ReturnStatus.APPROVED, ReturnStatus.REJECTED),
        milestone=ReturnStatus.APPROVED,
        does="customer_service",
        approves=("customer_service",),
        informed=(CUSTOMER,),
        inputs=(
            "the request: lines, quantities, reason, refund or exchange (the customer with the "
            "order's token, the storefront or admin)",
            "the order's delivered lines and its earlier returns",
            "each product's `returnable` flag",
        ),
        outputs=(
            "return and return-line rows (a refused request writes nothing: 409 or 422)",
            "events `return_decision_asked`, `return_approved` or `return_rejected`",
            "`return_decision_needed` notice to customer service's lead; `return_rejected` mail",
            "for exchanged lines a replacement order (`return_exchange_placed`, "
            "`return_exchange` mail): on approval, or on the parcel's arrival per "
            "`exchange_on`",
        ),
        activities=(
            ActivityName.ASK_RETURN_DECISION,
            ActivityName.RECORD_RETURN_DECISION,
            ActivityName.RECORD_EXCHANGE,
        ),
        timers=(
            Timer(
                "window",
                "after delivery, a return may be asked for",
                "requests are refused (409)",
                source="return",
            ),
            Timer(
                "return_decision_sla",
                "a return outside the rules waits for customer service",
                "overdue in customer service's queue; the return keeps waiting",
                source="settings",
            ),
        ),
        decisions=(
            Decision(
                "Outside the automatic rules (a product not returnable)?",
                detour_when=True,
                detour="REQUESTED: customer service approves or rejects, with a note",
                rejoin="continue",
                rejoin_label="approve",
                exit=("reject", ReturnStatus.REJECTED),
            ),
        ),
        human_tasks=(
            HumanTask(
                "approve or reject a return outside the rules, with a note",
                "customer_service",
                ("decide",),
            ),
        ),
        escalation="overdue in customer service's queue after return_decision_sla; the "
        "return waits for the decision",
        queues=("return_decision",),
    ),
    ReturnStage(
        number=2,
        name="Return label & send-back",
        purpose="Book the return label with the carrier that delivered the order, mail it, "
        "and wait for the parcel to come back.",
        statuses=(
            ReturnStatus.LABEL_SENT,
            ReturnStatus.IN_TRANSIT,
            ReturnStatus.ARRIVED,
            ReturnStatus.CLOSED,
        ),
        milestone=ReturnStatus.ARRIVED,
        does="logistics",
        approves=("logistics",),
        informed=(CUSTOMER, "warehouse"),
        inputs=(
            "the approved return",
            "the order's carrier and address",
            "the carrier's tracking webhooks for the return parcel",
        ),
        outputs=(
            "return label: carrier, tracking number, label URL (idempotency key "
            "`return-label-<return_id>`)",
            "`return_label` mail with the send-back deadline",
            "events `return_label_booked`, `return_in_transit`, `return_arrived`",
            "not sent back in time: event `return_not_sent_back` and `return_closed` mail",
        ),
        activities=(
            ActivityName.BOOK_RETURN_LABEL,
            ActivityName.RECORD_RETURN_TRACKING,
            ActivityName.CLOSE_UNSENT_RETURN,
        ),
        timers=(
            Timer(
                "send_back_within",
                "the customer has to hand the parcel to the carrier once the label is sent",
                "the return closes unrefunded; the customer is told",
                ActivityName.CLOSE_UNSENT_RETURN,
                source="return",
            ),
        ),
        decisions=(
            Decision(
                "Handed to the carrier within send_back_within?",
                detour_when=False,
                detour="closed unrefunded; the customer is told",
                rejoin="end",
                rejoin_label="",
                exit=("not sent back", ReturnStatus.CLOSED),
            ),
        ),
        human_tasks=(
            HumanTask(
                "carrier tracking events of the return parcel", "logistics", ("parcel_tracking",)
            ),
        ),
        escalation="the booking is retried with backoff while the carrier does not answer; "
        "not handed in within send_back_within, the return closes unrefunded",
    ),
    ReturnStage(
        number=3,
        name="Return inspection",
        purpose="The warehouse inspects each line back: restocked units go on hand as a goods "
        "receipt and serve the orders waiting for them first; disposed ones change no stock.",
        statuses=(ReturnStatus.INSPECTED,),
        milestone=ReturnStatus.INSPECTED,
        does="warehouse",
        approves=("warehouse",),
        informed=("purchasing",),
        inputs=(
            "the parcel back at the warehouse (`ARRIVED`)",
            "the return's lines and quantities",
        ),
        outputs=(
            "each line restocked or disposed, with a note",
            "restocked units: a goods receipt (`return-<return_id>-<sku>`) serving waiting orders",
            "events `return_line_restocked`, `return_line_disposed`",
            "`return_inspection_overdue` notice to the warehouse lead",
        ),
        activities=(
            ActivityName.RECORD_RETURN_INSPECTION,
            ActivityName.NOTIFY_RETURN_INSPECTION_OVERDUE,
        ),
        timers=(
            Timer(
                "inspection_sla",
                "an arrived parcel waits for the warehouse's inspection",
                "the warehouse lead is told once; overdue in the warehouse's queue",
                ActivityName.NOTIFY_RETURN_INSPECTION_OVERDUE,
                source="return",
            ),
        ),
        human_tasks=(
            HumanTask(
                "inspect each line: restock or dispose, with a note", "warehouse", ("inspect",)
            ),
        ),
        escalation="after inspection_sla the warehouse lead is told once; the return keeps "
        "waiting in the warehouse's queue",
        queues=("return_inspection",),
    ),
    ReturnStage(
        number=4,
        name="Return refund",
        purpose="Refund the accepted lines (and, with the return that brings the order's last "
        "unit back, its shipping) once through the payment adapter; tell the customer.",
        statuses=(ReturnStatus.REFUNDED, ReturnStatus.EXCHANGED, ReturnStatus.CLOSED),
        milestone=ReturnStatus.REFUNDED,
        does="finance",
        approves=("finance",),
        informed=(CUSTOMER,),
        inputs=(
            "each line's inspection and resolution",
            "the refund rules of the return policy (`refund_disposed`, "
            "`refund_shipping_on_full_return`)",
        ),
        outputs=(
            "one refund at the PSP (idempotency key `refund-<order_id>-return-<return_id>`)",
            "event `return_refunded` (`return_exchanged` or `return_closed` when nothing is "
            "refunded)",
            "`return_completed` mail",
        ),
        activities=(ActivityName.REFUND_RETURN,),
        decisions=(
            Decision(
                "Anything to refund?",
                detour_when=False,
                detour="exchanged lines only: EXCHANGED; nothing accepted: CLOSED",
                rejoin="end",
                rejoin_label="",
                exit=("nothing accepted", ReturnStatus.CLOSED),
            ),
        ),
        escalation="a refund the PSP refuses waits in finance's queue and is retried there; "
        "the return stays INSPECTED until then",
        queues=("payment_problem",),
    ),
)


# ------------------------------------------------------------------ service level per status
@dataclass(frozen=True)
class StatusSla:
    """How long an order may stay in a status before it counts as stuck."""

    # OrderPolicy field of the wait; None: only an automatic step follows.
    policy_field: str | None
    # True: counted from the shipment's expected delivery, not from entering the status.
    after_expected_delivery: bool = False
    # True: an automatic step follows the wait, with settings.stuck_automatic_after to do it.
    then_automatic: bool = False

    def describe(self) -> str:
        parts = []
        if self.after_expected_delivery:
            parts.append("expected delivery")
        if self.policy_field:
            parts.append(self.policy_field)
        if self.then_automatic or self.policy_field is None:
            parts.append("stuck_automatic_after (settings)")
        return " + ".join(parts)


STATUS_SLA: dict[OrderStatus, StatusSla] = {
    OrderStatus.RECEIVED: StatusSla(None),
    OrderStatus.CLASSIFIED: StatusSla(None),
    OrderStatus.PENDING_REVIEW: StatusSla("review_sla"),
    OrderStatus.APPROVED: StatusSla(None),
    OrderStatus.BACKORDERED: StatusSla("backorder_cancel_offer_after"),
    OrderStatus.RESERVED: StatusSla(None),
    OrderStatus.PICKING: StatusSla("pick_sla"),
    OrderStatus.PACKED: StatusSla(None),
    OrderStatus.SHIPPED: StatusSla("delivery_grace", after_expected_delivery=True),
    OrderStatus.IN_TRANSIT: StatusSla("delivery_grace", after_expected_delivery=True),
    OrderStatus.OUT_FOR_DELIVERY: StatusSla("delivery_grace", after_expected_delivery=True),
    OrderStatus.DELIVERED: StatusSla("quiet_period", then_automatic=True),
}


def status_sla(status: OrderStatus, policy: OrderPolicy, automatic: timedelta) -> timedelta:
    """The allowed time in `status`, counted from entering it (or from the expected delivery)."""
    sla = STATUS_SLA[status]
    allowed = timedelta(0)
    if sla.policy_field is not None:
        value = getattr(policy, sla.policy_field)
        assert isinstance(value, timedelta)
        allowed += value
    if sla.then_automatic or sla.policy_field is None:
        allowed += automatic
    return allowed


def policy_value(policy: OrderPolicy, name: str) -> timedelta | int:
    value = getattr(policy, name)
    assert isinstance(value, timedelta | int)
    return value
