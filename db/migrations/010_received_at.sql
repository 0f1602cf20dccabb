-- The time the shop received an order, next to the time the storefront says it was placed.
--
-- orders.received_at     when the API accepted the order (the workflow's input), set by
--                        step 1. First-come queues and "how long in this status" count from
--                        it: placed_at is the customer's (or storefront's) clock, which the
--                        shop cannot trust to order customers against each other.
-- backorders.received_at the order's received_at, copied onto its queue rows; each SKU's
--                        waiting queue is served in (received_at, order_id) order.
--
-- Rows from before this migration have only placed_at: it stands in for received_at, so
-- the queues waiting now keep the order they had.

ALTER TABLE orders ADD COLUMN received_at timestamptz;
UPDATE orders SET received_at = placed_at WHERE received_at IS NULL;
ALTER TABLE orders ALTER COLUMN received_at SET DEFAULT now();
ALTER TABLE orders ALTER COLUMN received_at SET NOT NULL;

ALTER TABLE backorders ADD COLUMN received_at timestamptz;
UPDATE backorders b SET received_at = o.received_at FROM orders o WHERE o.order_id = b.order_id;
UPDATE backorders SET received_at = placed_at WHERE received_at IS NULL;
ALTER TABLE backorders ALTER COLUMN received_at SET NOT NULL;
CREATE INDEX backorders_waiting_received ON backorders (sku, received_at) WHERE status = 'waiting';

-- Idempotency keys of requests that change state and are not naturally keyed (goods
-- receipts, feedback): the key, a hash of the body it came with, and the first answer.
-- The same key again with the same body gets that answer; with another body, 409.
CREATE TABLE idempotency_keys (
    scope        text NOT NULL,
    key          text NOT NULL,
    request_hash text NOT NULL,
    status_code  integer,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- The carrier chosen for each booking attempt of an order, written before the carrier is
-- called: a retry of the attempt asks the same carrier with the same idempotency key, and
-- can never book the parcel with a second one. booking_no: 0 the first parcel, n the n-th
-- replacement; requested_at: the workflow's time of the attempt (the same in every retry,
-- a new one when logistics asks again after every carrier refused).
CREATE TABLE carrier_choices (
    order_id     text NOT NULL REFERENCES orders (order_id),
    booking_no   integer NOT NULL CHECK (booking_no >= 0),
    requested_at timestamptz NOT NULL,
    carrier      text NOT NULL,
    reason       text NOT NULL,
    chosen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, booking_no, requested_at)
);

-- Orders a step could never process (an activity failed for good on the order's data):
-- the order ends REJECTED with the reason, and each waits here, in customer service's
-- queue, until someone has dealt with it. No reference to orders: the order's own row may
-- be what could not be written.
CREATE TABLE unprocessable_orders (
    order_id    text PRIMARY KEY,
    workflow_id text NOT NULL,
    step        smallint NOT NULL,
    activity    text NOT NULL,
    reason      text NOT NULL,
    refunded    boolean NOT NULL DEFAULT false,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE INDEX unprocessable_orders_open ON unprocessable_orders (recorded_at)
    WHERE resolved_at IS NULL;
