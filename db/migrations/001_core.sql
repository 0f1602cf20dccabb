-- Core schema of the shared information platform: orders, their events, and every
-- department's queue. Each business effect is written with its event in one transaction.

CREATE TABLE products (
    sku          text PRIMARY KEY,
    name         text NOT NULL,
    unit_price   numeric(12, 2) NOT NULL CHECK (unit_price > 0),
    currency     text NOT NULL DEFAULT 'EUR',
    weight_kg    numeric(8, 3) NOT NULL CHECK (weight_kg > 0),
    bin_location text NOT NULL DEFAULT '',
    pre_sale     boolean NOT NULL DEFAULT false,
    active       boolean NOT NULL DEFAULT true
);

-- Available = on_hand - reserved; the CHECKs make overselling impossible even for a buggy caller.
CREATE TABLE inventory (
    sku           text PRIMARY KEY REFERENCES products (sku),
    on_hand       integer NOT NULL CHECK (on_hand >= 0),
    reserved      integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    reorder_point integer NOT NULL DEFAULT 0 CHECK (reorder_point >= 0),
    order_up_to   integer NOT NULL DEFAULT 0 CHECK (order_up_to >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (reserved <= on_hand)
);

CREATE TABLE departments (
    code       text PRIMARY KEY,
    name       text NOT NULL,
    lead_email text NOT NULL
);

CREATE TABLE orders (
    order_id          text PRIMARY KEY,
    workflow_id       text NOT NULL UNIQUE,
    channel           text NOT NULL,
    customer_id       text NOT NULL,
    customer_email    text NOT NULL,
    customer_name     text NOT NULL,
    currency          text NOT NULL,
    total             numeric(12, 2) NOT NULL,
    total_quantity    integer NOT NULL,
    shipping_country  text NOT NULL,
    billing_country   text NOT NULL,
    shipping_postal   text NOT NULL,
    promo_code        text,
    service_level     text NOT NULL,
    payment_txn       text NOT NULL,
    placed_at         timestamptz NOT NULL,
    status            text NOT NULL,
    status_changed_at timestamptz NOT NULL,
    order_type        text,
    department        text,
    risk_score        numeric(5, 2),
    risk_reasons      jsonb,
    flagged           boolean NOT NULL DEFAULT false,
    payload           jsonb NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
-- History look-ups of the risk review filter on these.
CREATE INDEX orders_customer_placed ON orders (customer_id, placed_at);
CREATE INDEX orders_email_placed ON orders (customer_email, placed_at);
CREATE INDEX orders_postal_placed ON orders (shipping_country, shipping_postal, placed_at);
CREATE INDEX orders_payment_placed ON orders (payment_txn, placed_at);
CREATE INDEX orders_placed ON orders (placed_at);
CREATE INDEX orders_status ON orders (status, status_changed_at);

CREATE TABLE order_lines (
    order_id   text NOT NULL REFERENCES orders (order_id),
    line_no    integer NOT NULL,
    sku        text NOT NULL REFERENCES products (sku),
    quantity   integer NOT NULL CHECK (quantity > 0),
    unit_price numeric(12, 2) NOT NULL,
    PRIMARY KEY (order_id, line_no),
    UNIQUE (order_id, sku)
);
CREATE INDEX order_lines_sku ON order_lines (sku);

CREATE TABLE payments (
    order_id       text PRIMARY KEY REFERENCES orders (order_id),
    method         text NOT NULL,
    transaction_id text NOT NULL,
    amount         numeric(12, 2) NOT NULL,
    currency       text NOT NULL,
    status         text NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);

-- One refund per order: the primary key is the idempotency key of the payment adapter.
CREATE TABLE refunds (
    order_id    text PRIMARY KEY REFERENCES orders (order_id),
    amount      numeric(12, 2) NOT NULL CHECK (amount >= 0),
    reason      text NOT NULL,
    refunded_at timestamptz NOT NULL DEFAULT now()
);

-- The append-only event log: one row per step event. event_key makes every activity's
-- effect idempotent: a retried activity finds its key taken and changes nothing.
CREATE TABLE order_events (
    id          bigserial PRIMARY KEY,
    order_id    text NOT NULL REFERENCES orders (order_id),
    event_key   text NOT NULL,
    step        smallint NOT NULL CHECK (step BETWEEN 1 AND 8),
    status      text,
    kind        text NOT NULL,
    actor       text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (order_id, event_key)
);
CREATE INDEX order_events_occurred ON order_events (occurred_at);
CREATE INDEX order_events_status ON order_events (status, occurred_at);

CREATE FUNCTION order_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'order_events is append-only';
END;
$$;
CREATE TRIGGER order_events_no_update BEFORE UPDATE OR DELETE ON order_events
    FOR EACH ROW EXECUTE FUNCTION order_events_append_only();

CREATE TABLE reservations (
    order_id    text NOT NULL REFERENCES orders (order_id),
    sku         text NOT NULL REFERENCES products (sku),
    quantity    integer NOT NULL CHECK (quantity > 0),
    status      text NOT NULL DEFAULT 'held' CHECK (status IN ('held', 'released', 'consumed')),
    reserved_at timestamptz NOT NULL DEFAULT now(),
    closed_at   timestamptz,
    PRIMARY KEY (order_id, sku)
);
CREATE INDEX reservations_sku_held ON reservations (sku) WHERE status = 'held';

CREATE TABLE purchase_requests (
    id           bigserial PRIMARY KEY,
    sku          text NOT NULL REFERENCES products (sku),
    quantity     integer NOT NULL CHECK (quantity >= 0),
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'fulfilled', 'cancelled')),
    reason       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    fulfilled_at timestamptz
);
-- One open request per SKU accumulates every shortfall: never a duplicate.
CREATE UNIQUE INDEX purchase_requests_one_open_per_sku ON purchase_requests (sku) WHERE status = 'open';

-- An order's share of a purchase request: what it waits for, served first come first served.
CREATE TABLE backorders (
    order_id    text NOT NULL REFERENCES orders (order_id),
    sku         text NOT NULL REFERENCES products (sku),
    request_id  bigint NOT NULL REFERENCES purchase_requests (id),
    -- the whole line waits in the queue; only the shortfall was added to the request
    quantity    integer NOT NULL CHECK (quantity > 0),
    shortfall   integer NOT NULL CHECK (shortfall >= 0),
    status      text NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'served', 'withdrawn')),
    placed_at   timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    closed_at   timestamptz,
    PRIMARY KEY (order_id, sku)
);
CREATE INDEX backorders_waiting ON backorders (sku, placed_at) WHERE status = 'waiting';

CREATE TABLE stock_receipts (
    id          bigserial PRIMARY KEY,
    receipt_key text NOT NULL UNIQUE,
    sku         text NOT NULL REFERENCES products (sku),
    quantity    integer NOT NULL CHECK (quantity > 0),
    received_by text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE review_tasks (
    order_id     text PRIMARY KEY REFERENCES orders (order_id),
    score        numeric(5, 2) NOT NULL,
    reasons      jsonb NOT NULL,
    status       text NOT NULL DEFAULT 'open'
                 CHECK (status IN ('open', 'escalated', 'approved', 'rejected', 'expired', 'cancelled')),
    opened_at    timestamptz NOT NULL,
    due_at       timestamptz NOT NULL,
    deadline_at  timestamptz NOT NULL,
    escalated_at timestamptz,
    decided_at   timestamptz,
    decided_by   text,
    decision     text,
    note         text
);
CREATE INDEX review_tasks_open ON review_tasks (opened_at) WHERE status IN ('open', 'escalated');

CREATE TABLE warehouse_tasks (
    order_id   text PRIMARY KEY REFERENCES orders (order_id),
    status     text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'picked', 'packed', 'cancelled')),
    opened_at  timestamptz NOT NULL,
    due_at     timestamptz NOT NULL,
    picked_at  timestamptz,
    picked_by  text,
    packed_at  timestamptz,
    packed_by  text,
    weight_kg  numeric(8, 3)
);
CREATE INDEX warehouse_tasks_open ON warehouse_tasks (opened_at) WHERE status IN ('open', 'picked');

CREATE TABLE carriers (
    code          text PRIMARY KEY,
    name          text NOT NULL,
    max_weight_kg numeric(8, 3) NOT NULL,
    on_time_rate  numeric(5, 4) NOT NULL CHECK (on_time_rate BETWEEN 0 AND 1),
    zones         jsonb NOT NULL,
    rates         jsonb NOT NULL,
    active        boolean NOT NULL DEFAULT true
);

CREATE TABLE shipments (
    order_id          text PRIMARY KEY REFERENCES orders (order_id),
    carrier           text NOT NULL,
    tracking_number   text NOT NULL UNIQUE,
    delivery_note     text NOT NULL,
    service_level     text NOT NULL,
    weight_kg         numeric(8, 3) NOT NULL,
    cost              numeric(12, 2) NOT NULL,
    choice_reason     text NOT NULL,
    booked_at         timestamptz NOT NULL,
    expected_delivery timestamptz NOT NULL,
    status            text NOT NULL,
    delivered_at      timestamptz,
    last_event_at     timestamptz
);

-- Every tracking event received, applied or not: (carrier, event_id) is never applied twice.
CREATE TABLE tracking_events (
    id              bigserial PRIMARY KEY,
    carrier         text NOT NULL,
    event_id        text NOT NULL,
    tracking_number text NOT NULL,
    order_id        text,
    status          text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    outcome         text NOT NULL,
    UNIQUE (carrier, event_id)
);

CREATE TABLE follow_ups (
    order_id   text NOT NULL REFERENCES orders (order_id),
    attempt    integer NOT NULL CHECK (attempt >= 1),
    opened_at  timestamptz NOT NULL,
    escalated  boolean NOT NULL DEFAULT false,
    carrier_status text,
    status     text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolution text,
    resolved_at timestamptz,
    PRIMARY KEY (order_id, attempt)
);

-- The outbox: every e-mail and department notice is a row first, sent by a dispatcher after.
CREATE TABLE notifications (
    id               bigserial PRIMARY KEY,
    notification_key text NOT NULL UNIQUE,
    order_id         text,
    kind             text NOT NULL,
    channel          text NOT NULL CHECK (channel IN ('email', 'department')),
    recipient        text NOT NULL,
    subject          text NOT NULL,
    body             text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    sent_at          timestamptz
);
CREATE INDEX notifications_unsent ON notifications (id) WHERE sent_at IS NULL;

CREATE TABLE feedback_tickets (
    ticket_id   text PRIMARY KEY,
    order_id    text NOT NULL REFERENCES orders (order_id),
    request_key text NOT NULL UNIQUE,
    category    text NOT NULL CHECK (category IN ('delivery', 'product', 'payment', 'other')),
    department  text NOT NULL,
    message     text NOT NULL,
    status      text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);

CREATE TABLE product_reviews (
    order_id   text PRIMARY KEY REFERENCES orders (order_id),
    rating     smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment    text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
