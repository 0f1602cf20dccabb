-- A delivery queued while an earlier event of its order waits out a retry's backoff for
-- the same subscription is not due before that retry: it would only wait behind it, and
-- every claim would scan it meanwhile (a subscriber that is down would leave a growing
-- backlog to scan). When the earlier one is delivered, its followers become due at once
-- (db/repositories/webhooks.py). One on the wire holds nothing back: its outcome comes
-- within the send timeout, and a hold could outlast the delivery that it waits for.
CREATE OR REPLACE FUNCTION order_events_fan_out_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_deliveries (subscription_id, event_id, order_id, event_type,
                                    next_attempt_at)
    SELECT s.id, NEW.id, NEW.order_id, NEW.kind,
           greatest(now(), (SELECT max(d.next_attempt_at) FROM webhook_deliveries d
                             WHERE d.subscription_id = s.id AND d.order_id = NEW.order_id
                               AND d.status = 'pending'))
      FROM webhook_subscriptions s
     WHERE s.deleted_at IS NULL AND ('*' = ANY (s.events) OR NEW.kind = ANY (s.events))
    ON CONFLICT (subscription_id, event_id) DO NOTHING;
    RETURN NULL;
END;
$$;
