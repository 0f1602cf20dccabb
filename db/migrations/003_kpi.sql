-- The shared live view and the improvement loop.
--
-- Every new order event is announced on the channel `order_events` (delivered at commit, so
-- listeners only ever see events that exist); the API holds one LISTEN connection and fans
-- the events out to its server-sent event streams. Weekly KPI snapshots are kept so a change
-- to the process can be judged before and after.

CREATE OR REPLACE FUNCTION order_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload jsonb;
BEGIN
    payload := jsonb_build_object(
        'id', NEW.id,
        'order_id', NEW.order_id,
        'step', NEW.step,
        'status', NEW.status,
        'kind', NEW.kind,
        'actor', NEW.actor,
        'occurred_at', NEW.occurred_at
    );
    -- A NOTIFY payload must stay under 8000 bytes: large details are read by id instead.
    IF octet_length(NEW.details::text) <= 4000 THEN
        payload := payload || jsonb_build_object('details', NEW.details);
    END IF;
    PERFORM pg_notify('order_events', payload::text);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS order_events_notify ON order_events;
CREATE TRIGGER order_events_notify AFTER INSERT ON order_events
    FOR EACH ROW EXECUTE FUNCTION order_events_notify();

CREATE TABLE IF NOT EXISTS kpi_snapshots (
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    kpis         jsonb NOT NULL,
    taken_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (period_start, period_end),
    CHECK (period_end > period_start)
);
