-- Outbound webhooks: the shop's other systems subscribe to order events, and each event is
-- POSTed to each matching subscription, signed, at least once and in order per order.
--
-- Fan-out is a transactional outbox: a trigger on `order_events` writes one delivery row per
-- matching subscription in the transaction that records the event, so an event is
-- delivered exactly when it is committed, whatever order concurrent transactions commit in,
-- and (subscription_id, event_id) is unique so nothing is queued twice.
--
-- webhook_deliveries.status:
--   pending --claim--> sending (leased) --2xx--> delivered
--                      sending --other answer / no answer--> pending (backoff) | dead
--                      sending --lease expired--> claimable again (its dispatcher is gone)
--   pending (older than the max age, e.g. waiting behind an earlier event) --> dead
--   dead --admin retry--> pending (its age counted afresh from the retry)
-- A delivery is claimable only when no earlier event of the same order is still pending or
-- sending for the same subscription: that is what keeps the order per order.
-- next_attempt_at: for a `sending` row it equals lease_until (one index finds both).
-- age_from: when the delivery's retry window started (creation, or an admin's retry).

CREATE TABLE webhook_subscriptions (
    id            bigserial PRIMARY KEY,
    url           text NOT NULL CHECK (url ~ '^https?://'),
    -- The signing secret, encrypted (AES-GCM, key from settings): it is needed in clear
    -- only at the moment of signing.
    secret_sealed bytea NOT NULL,
    -- What operators see of the secret: never enough to sign with.
    secret_hint   text NOT NULL,
    -- Event types (order_events.kind) or '{*}' for every event.
    events        text[] NOT NULL CHECK (cardinality(events) > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz
);
CREATE INDEX webhook_subscriptions_live ON webhook_subscriptions (id) WHERE deleted_at IS NULL;

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    subscription_id  bigint NOT NULL REFERENCES webhook_subscriptions (id),
    event_id         bigint NOT NULL REFERENCES order_events (id),
    order_id         text NOT NULL,
    event_type       text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    age_from         timestamptz NOT NULL DEFAULT now(),
    lease_until      timestamptz,
    lease_token      uuid,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    dead_at          timestamptz,
    UNIQUE (subscription_id, event_id)
);
-- The dispatchers' scan: due pending rows and sending rows whose lease has run out.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at, id)
    WHERE status IN ('pending', 'sending');
-- "Is an earlier event of this order still undelivered for this subscription?"
CREATE INDEX webhook_deliveries_open_by_order
    ON webhook_deliveries (subscription_id, order_id, event_id)
    WHERE status IN ('pending', 'sending');
CREATE INDEX webhook_deliveries_by_subscription ON webhook_deliveries (subscription_id, id);

-- Every attempt, for the subscriber's owner to see why deliveries fail.
CREATE TABLE webhook_attempts (
    id              bigserial PRIMARY KEY,
    delivery_id     bigint NOT NULL REFERENCES webhook_deliveries (id),
    subscription_id bigint NOT NULL REFERENCES webhook_subscriptions (id),
    attempted_at    timestamptz NOT NULL DEFAULT now(),
    status_code     integer,
    latency_ms      integer NOT NULL CHECK (latency_ms >= 0),
    error           text
);
CREATE INDEX webhook_attempts_by_delivery ON webhook_attempts (delivery_id, id);

CREATE FUNCTION order_events_fan_out_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (subscription_id, event_id, order_id, event_type)
    SELECT s.id, NEW.id, NEW.order_id, NEW.kind
      FROM webhook_subscriptions s
     WHERE s.deleted_at IS NULL AND ('*' = ANY (s.events) OR NEW.kind = ANY (s.events))
    ON CONFLICT (subscription_id, event_id) DO NOTHING;
    RETURN NULL;
END;
$$;
CREATE TRIGGER order_events_webhooks AFTER INSERT ON order_events
    FOR EACH ROW EXECUTE FUNCTION order_events_fan_out_webhooks();
