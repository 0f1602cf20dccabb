-- Risk that learns from outcomes.
--
-- risk_model_versions   every calibrated operating point of the risk score (threshold and
--                       the signal weights it was fitted with), with the figures that
--                       justified it; at most one is active (the partial unique index), and
--                       the risk review scores with it. calibration_key makes inserting a
--                       version idempotent: a retried calibration finds its own row.
-- risk_labels           explicit outcomes a person or the PSP gave an order (fraud or
--                       legitimate), one per order and source; the latest one counts.
--                       Reviewer decisions and review timeouts are not copied here: they are
--                       read from review_tasks (db/repositories/risk_labels.py).
-- orders.risk_model_version  the version that scored the order (NULL: the configured
--                       threshold, before any version existed).

CREATE TABLE risk_model_versions (
    version         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    calibration_key text NOT NULL UNIQUE,
    threshold       double precision NOT NULL CHECK (threshold BETWEEN 0 AND 100),
    weights         jsonb NOT NULL,
    metrics         jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    active          boolean NOT NULL DEFAULT false,
    activated_at    timestamptz
);
CREATE UNIQUE INDEX risk_model_versions_one_active ON risk_model_versions ((true)) WHERE active;

CREATE TABLE risk_labels (
    order_id text NOT NULL REFERENCES orders (order_id),
    label    text NOT NULL CHECK (label IN ('fraud', 'legit')),
    source   text NOT NULL CHECK (source IN ('fraud_report', 'chargeback', 'manual')),
    actor    text NOT NULL,
    note     text,
    at       timestamptz NOT NULL,
    UNIQUE (order_id, source)
);

ALTER TABLE orders ADD COLUMN risk_model_version integer REFERENCES risk_model_versions (version);
