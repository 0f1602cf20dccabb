"""Step 3: the risk assessment, the review task with its escalation, and the decision.

Each activity writes its effect, the order's new status and its event in one transaction,
keyed so that a retried activity changes nothing the second time. They touch only
PostgreSQL, so the workflow runs them as local activities.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.refunds import refund_and_tell
from db.repositories import events, notifications, orders
from db.repositories.risk_history import load_risk_history
from orderflow.models import (
    OrderStatus,
    RiskAssessment,
    Step,
)
from orderflow.models.activity_names import ActivityName
from orderflow.models.risk import RiskConfig
from orderflow.models.steps import (
    AssessRiskInput,
    OrderRef,
    ReviewOutcomeInput,
)
from orderflow.settings import Settings
from policies.risk import score_order


class ReviewActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings
        self._risk_config = RiskConfig.from_settings(settings)

    # Step 3 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.ASSESS_RISK)
    async def assess_risk(self, data: AssessRiskInput) -> RiskAssessment:
        order = data.order
        async with self._pool.acquire() as conn:
            stored = await conn.fetchrow(
                "SELECT risk_score, risk_reasons, flagged, placed_at FROM orders WHERE order_id = $1",
                order.order_id,
            )
            if stored is None:
                raise ApplicationError(
                    f"order {order.order_id} is not recorded", non_retryable=True
                )
            if stored["risk_score"] is not None:
                # Scored before (a retry): the first verdict stands, history has moved on since.
                return RiskAssessment(
                    score=float(stored["risk_score"]),
                    flagged=stored["flagged"],
                    reasons=stored["risk_reasons"],
                )
            history = await load_risk_history(conn, order, stored["placed_at"])
            assessment = score_order(order, history, self._risk_config)
            async with conn.transaction():
                status = OrderStatus.PENDING_REVIEW if assessment.flagged else OrderStatus.APPROVED
                recorded = await events.record_event(
                    conn,
                    order_id=order.order_id,
                    event_key="review.assessed",
                    step=Step.REVIEW,
                    kind="review_flagged" if assessment.flagged else "auto_approved",
                    status=status,
                    details=assessment.model_dump(mode="json"),
                )
                if recorded is None:
                    return assessment
                await orders.set_risk(
                    conn,
                    order.order_id,
                    assessment.score,
                    [r.model_dump(mode="json") for r in assessment.reasons],
                    assessment.flagged,
                )
                if assessment.flagged:
                    await conn.execute(
                        """INSERT INTO review_tasks (order_id, score, reasons, opened_at, due_at, deadline_at)
                           VALUES ($1, $2, $3, $4::timestamptz, $4::timestamptz + $5::interval,
                                   $4::timestamptz + $6::interval)
                           ON CONFLICT (order_id) DO NOTHING""",
                        order.order_id,
                        assessment.score,
                        [r.model_dump(mode="json") for r in assessment.reasons],
                        recorded,
                        data.review_sla,
                        data.review_deadline,
                    )
                    await notifications.notify_department(
                        conn,
                        department="risk",
                        key=f"{order.order_id}:review_opened",
                        order_id=order.order_id,
                        kind="review_task_opened",
                        context={
                            "score": assessment.score,
                            "reasons": [r.message for r in assessment.reasons],
                        },
                    )
        return assessment

    @activity.defn(name=ActivityName.ESCALATE_REVIEW)
    async def escalate_review(self, ref: OrderRef) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await events.record_event(
                conn,
                order_id=ref.order_id,
                event_key="review.escalated",
                step=Step.REVIEW,
                kind="review_escalated",
                details={"reason": "review SLA passed"},
            )
            if recorded is None:
                return
            await conn.execute(
                """UPDATE review_tasks SET status = 'escalated', escalated_at = $2
                   WHERE order_id = $1 AND status = 'open'""",
                ref.order_id,
                recorded,
            )
            await notifications.notify_department(
                conn,
                department="risk_supervisor",
                key=f"{ref.order_id}:review_escalated",
                order_id=ref.order_id,
                kind="review_escalated",
            )

    @activity.defn(name=ActivityName.RECORD_REVIEW_DECISION)
    async def record_review_decision(self, data: ReviewOutcomeInput) -> None:
        decision = data.decision
        approved = decision.decision == "approve"
        async with self._pool.acquire() as conn, conn.transaction():
            recorded = await events.record_event(
                conn,
                order_id=data.order_id,
                event_key="review.decided",
                step=Step.REVIEW,
                kind="review_timeout"
                if data.timed_out
                else ("review_approved" if approved else "review_rejected"),
                status=OrderStatus.APPROVED if approved else OrderStatus.REJECTED,
                actor=decision.reviewer,
                details={
                    "decision": decision.decision,
                    "note": decision.note,
                    "timed_out": data.timed_out,
                },
            )
            if recorded is None:
                return
            task_status = "approved" if approved else ("expired" if data.timed_out else "rejected")
            await conn.execute(
                """UPDATE review_tasks SET status = $2, decided_at = $3, decided_by = $4,
                       decision = $5, note = $6 WHERE order_id = $1""",
                data.order_id,
                task_status,
                recorded,
                decision.reviewer,
                decision.decision,
                decision.note,
            )
            if not approved:
                await refund_and_tell(
                    conn, self._settings, data.order_id, reason=decision.note or "rejected"
                )
