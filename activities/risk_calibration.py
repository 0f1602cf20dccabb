"""The risk calibration's one effect: fit the flag threshold (and, with the logistic model,
the signals' weights) on the shop's labelled history in PostgreSQL, record it as a new
version, and make it active if it is not worse on the holdout than the operating point in
force (`policies/risk_calibration.py`, `policies/risk_model.py` decide)."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from temporalio import activity

from db.repositories import process_changes, risk_labels, risk_models
from orderflow.models.activity_names import ActivityName
from orderflow.models.risk import (
    CalibrationTarget,
    RiskCalibrationInput,
    RiskCalibrationResult,
    RiskConfig,
)
from orderflow.settings import Settings
from policies.risk_calibration import LabelledScore, calibrate
from policies.risk_model import LabelledSignals, calibrate_learned, strengths_of


class RiskCalibrationActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    @activity.defn(name=ActivityName.CALIBRATE_RISK)
    async def calibrate_risk(self, data: RiskCalibrationInput) -> RiskCalibrationResult:
        settings = self._settings
        target = CalibrationTarget.from_settings(settings)
        config = RiskConfig.from_settings(settings)
        async with self._pool.acquire() as conn:
            rows = await risk_labels.labelled(
                conn,
                as_of=data.as_of,
                settle=timedelta(days=settings.risk_label_settle_days),
                since=data.as_of - timedelta(days=settings.risk_calibration_window_days),
            )
            current = await risk_models.active(conn)
            threshold = current["threshold"] if current is not None else config.flag_threshold
            # A version without weights of its own scores with the configured ones.
            weights = (current["weights"] if current is not None else None) or config.weights
            if settings.risk_calibration_model == "logistic":
                result = calibrate_learned(
                    [
                        LabelledSignals(
                            r["order_id"],
                            r["placed_at"],
                            strengths_of(
                                ((x["code"], x["points"]) for x in r["risk_reasons"] or []),
                                r["version_weights"] or config.weights,
                            ),
                            r["label"] == "fraud",
                        )
                        for r in rows
                    ],
                    target,
                    weights,
                    threshold,
                )
            else:
                samples = [
                    LabelledScore(r["order_id"], r["placed_at"], r["score"], r["label"] == "fraud")
                    for r in rows
                ]
                result = calibrate(samples, target, threshold)
            if result.threshold is None:
                return RiskCalibrationResult(version=None, activated=False, calibration=result)
            # A retry finds the version of its first attempt by the key and, being judged
            # against it if it went live, activates it again: a no-op.
            row = await risk_models.insert_version(
                conn,
                calibration_key=data.calibration_key,
                threshold=result.threshold,
                weights=result.weights or dict(weights),
                metrics=result.model_dump(mode="json"),
                created_at=data.as_of,
            )
            if result.accepted:
                before = await risk_models.active(conn)
                if before is None or before["version"] != row["version"]:
                    async with conn.transaction():
                        await risk_models.activate(conn, row["version"], at=data.as_of)
                        # A new operating point of the review is a dated process change,
                        # recorded with its activation (a retry finds it live and skips both).
                        await process_changes.record_change(
                            conn,
                            setting="risk.flag_threshold",
                            steps=[3],
                            old=float(before["threshold"])
                            if before is not None
                            else self._settings.risk_flag_threshold,
                            new=result.threshold,
                            by="risk-calibration",
                            reason=f"calibrated version {row['version']} went live: not worse "
                            "on the holdout",
                            source="calibration",
                            changed_at=data.as_of,
                        )
        return RiskCalibrationResult(
            version=row["version"], activated=result.accepted, calibration=result
        )
