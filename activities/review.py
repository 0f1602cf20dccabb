"""Step 3: the risk assessment, the review task with its escalation, and the decision.

Each activity writes its effect once, with its event (`activities/effects.py`). They touch
only PostgreSQL, so the workflow runs them as local activities.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.effects import OrderActivities, OrderEvent
from db.repositories import orders, refunds, reviews, risk_models
from db.repositories.risk_history import load_risk_history
from orderflow.models import OrderStatus, RiskAssessment, Step
from orderflow.models.activity_names import ActivityName
from orderflow.models.risk import RiskConfig
from orderflow.models.steps import AssessRiskInput, OrderRef, ReviewOutcomeInput
from orderflow.settings import Settings
from policies.risk import score_order


class ReviewActivities(OrderActivities):
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        super().__init__(pool, settings)
        self._risk_config = RiskConfig.from_settings(settings)

    # Step 3 ---------------------------------------------------------------------------
    @activity.defn(name=ActivityName.ASSESS_RISK)
    async def assess_risk(self, data: AssessRiskInput) -> RiskAssessment:
        order = data.order
        async with self._pool.acquire() as conn:
            stored = await orders.risk_of(conn, order.order_id)
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
            # The calibrated operating point in force, if any (its threshold, and its learned
            # weights when it has them); its number goes on the order so every verdict can
            # be traced to the operating point that made it.
            version = await risk_models.active(conn)
            config = self._risk_config
            if version is not None:
                update = {"flag_threshold": version["threshold"]}
                if version["weights"]:
                    update["weights"] = {**config.weights, **version["weights"]}
                config = config.model_copy(update=update)
            version_no = version["version"] if version is not None else None
            assessment = score_order(order, history, config)
            async with conn.transaction():
                status = OrderStatus.PENDING_REVIEW if assessment.flagged else OrderStatus.APPROVED
                claimed = await self._effects.claim_in(
                    conn,
                    OrderEvent(
                        order.order_id,
                        "review.assessed",
                        Step.REVIEW,
                        "review_flagged" if assessment.flagged else "auto_approved",
                        status=status,
                        details=assessment.model_dump(mode="json"),
                    ),
                )
                if claimed is None:
                    return assessment
                reasons = [r.model_dump(mode="json") for r in assessment.reasons]
                await orders.set_risk(
                    conn, order.order_id, assessment.score, reasons, assessment.flagged
                )
                await risk_models.record_scored_by(conn, order.order_id, version_no)
                if assessment.flagged:
                    await reviews.open_task(
                        conn,
                        order.order_id,
                        score=assessment.score,
                        reasons=reasons,
                        opened_at=claimed.at,
                        sla=data.review_sla,
                        deadline=data.review_deadline,
                    )
                    await claimed.notify_department(
                        department="risk",
                        key=f"{order.order_id}:review_opened",
                        kind="review_task_opened",
                        context={
                            "score": assessment.score,
                            "reasons": [r.message for r in assessment.reasons],
                        },
                    )
        return assessment

    @activity.defn(name=ActivityName.ESCALATE_REVIEW)
    async def escalate_review(self, ref: OrderRef) -> None:
        event = OrderEvent(
            ref.order_id,
            "review.escalated",
            Step.REVIEW,
            "review_escalated",
            details={"reason": "review SLA passed"},
        )
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return
            await reviews.escalate(claimed.conn, ref.order_id, at=claimed.at)
            await claimed.notify_department(
                department="risk_supervisor",
                key=f"{ref.order_id}:review_escalated",
                kind="review_escalated",
            )

    @activity.defn(name=ActivityName.RECORD_REVIEW_DECISION)
    async def record_review_decision(self, data: ReviewOutcomeInput) -> None:
        decision = data.decision
        approved = decision.decision == "approve"
        event = OrderEvent(
            data.order_id,
            "review.decided",
            Step.REVIEW,
            "review_timeout"
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
        async with self._effects.claim(event) as claimed:
            if claimed is None:
                return
            await reviews.decide(
                claimed.conn,
                data.order_id,
                status="approved" if approved else ("expired" if data.timed_out else "rejected"),
                at=claimed.at,
                by=decision.reviewer,
                decision=decision.decision,
                note=decision.note,
            )
            if not approved:
                reason = decision.note or "rejected"
                await refunds.refund(
                    claimed.conn, refunds.RefundRequest(order_id=data.order_id, reason=reason)
                )
                await refunds.tell_customer_closed(
                    claimed.conn, self._settings, data.order_id, cause="review"
                )
