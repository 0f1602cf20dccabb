-- The payment ledger: what the shop asked of the payment service provider (PSP) and what
-- came of it, next to the order's payment as checkout left it.
--
-- payments.authorization_expires_at  when an authorised (not yet captured) payment lapses
--                                    at the PSP, as checkout said.
-- payments.authorization_renewed_until  the expiry after the latest reauthorisation. Kept
--                                    apart: every operation tells the PSP the checkout's
--                                    facts, and a retried request must carry the body it
--                                    was first sent with.
-- payment_operations                 one row per money operation, written BEFORE the PSP is
--                                    called: its idempotency_key is the PSP's
--                                    Idempotency-Key, so a retried activity sends the same
--                                    key and the PSP counts the effect once. What the shop
--                                    captured, voided and refunded is derived from these
--                                    rows (db/repositories/payments.py), never kept twice.
--                                    retry_of: the failed operation a person sent again
--                                    under a new key (each failed one at most once).
-- psp_webhook_events                 every signed event the PSP posted, once per event_id,
--                                    with what the webhook did with it.
-- payment_disputes                   chargebacks the card holder's bank opened: finance's
--                                    tasks; the order itself is not reopened.

ALTER TABLE payments ADD COLUMN authorization_expires_at timestamptz;
ALTER TABLE payments ADD COLUMN authorization_renewed_until timestamptz;
-- The webhook finds the order of a PSP event by its transaction.
CREATE INDEX payments_transaction ON payments (transaction_id);

CREATE TABLE payment_operations (
    id              bigserial PRIMARY KEY,
    order_id        text NOT NULL REFERENCES orders (order_id),
    kind            text NOT NULL
                    CHECK (kind IN ('capture', 'void', 'refund', 'reauthorization')),
    idempotency_key text NOT NULL UNIQUE,
    -- The PSP's id of the capture or refund (NULL until the PSP answered, and for voids
    -- and reauthorisations, which act on the payment itself).
    psp_id          text,
    amount          numeric(12, 2) CHECK (amount IS NULL OR amount >= 0),
    reason          text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'succeeded', 'settled', 'failed', 'refused')),
    failure_code    text,
    retry_of        text UNIQUE REFERENCES payment_operations (idempotency_key),
    requested_by    text NOT NULL DEFAULT 'system',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_operations_order ON payment_operations (order_id, kind, id);
CREATE INDEX payment_operations_psp_id ON payment_operations (psp_id) WHERE psp_id IS NOT NULL;
-- Finance's queue: failed captures and refunds not yet sent again.
CREATE INDEX payment_operations_failed ON payment_operations (updated_at) WHERE status = 'failed';

CREATE TABLE psp_webhook_events (
    event_id       text PRIMARY KEY,
    type           text NOT NULL,
    transaction_id text NOT NULL,
    object_id      text NOT NULL,
    amount         numeric(12, 2) NOT NULL,
    -- NULL when no order holds the transaction (outcome unknown_payment).
    order_id       text REFERENCES orders (order_id),
    outcome        text NOT NULL CHECK (outcome IN ('applied', 'unknown_payment')),
    occurred_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX psp_webhook_events_order ON psp_webhook_events (order_id, received_at);

CREATE TABLE payment_disputes (
    dispute_id  text PRIMARY KEY,
    order_id    text NOT NULL REFERENCES orders (order_id),
    amount      numeric(12, 2) NOT NULL CHECK (amount >= 0),
    reason      text NOT NULL,
    opened_at   timestamptz NOT NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'won', 'lost', 'accepted')),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    closed_at   timestamptz
);
CREATE INDEX payment_disputes_open ON payment_disputes (opened_at) WHERE status = 'open';
