-- Orders from marketplaces: each feed order once, by its marketplace and its id there.
-- `mapped`: the shop's order is (being) placed; `exception`: it cannot be mapped and waits
-- for customer service (the raw payload kept); `rejected`: a person said no, or the
-- marketplace cancelled it before it was placed. Acknowledged to the marketplace only once
-- placed.
CREATE TABLE marketplace_orders (
    marketplace       text NOT NULL,
    external_order_id text NOT NULL,
    order_id          text UNIQUE,
    status            text NOT NULL CHECK (status IN ('mapped', 'exception', 'rejected')),
    problem           text,
    raw               jsonb NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at   timestamptz,
    resolved_by       text,
    resolved_at       timestamptz,
    resolution_note   text,
    PRIMARY KEY (marketplace, external_order_id)
);
CREATE INDEX marketplace_orders_exceptions ON marketplace_orders (received_at)
    WHERE status = 'exception';

-- Where each marketplace's poller is in its feed, for people (the poller's own history
-- holds the cursor it goes on from).
CREATE TABLE marketplace_feeds (
    marketplace  text PRIMARY KEY,
    cursor       text,
    polled_at    timestamptz,
    orders_seen  bigint NOT NULL DEFAULT 0,
    last_error   text,
    last_error_at timestamptz
);
