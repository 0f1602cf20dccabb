-- Returns: lines of a delivered order sent back, each return run by its own workflow.
-- A product that is not returnable (hygiene, custom-made) goes to customer service to decide.
ALTER TABLE products ADD COLUMN returnable boolean NOT NULL DEFAULT true;

-- A request takes the order's row lock, so two requests for the same line are decided one
-- after the other and only one of them finds the quantity still free.
CREATE TABLE returns (
    return_id       text PRIMARY KEY,
    order_id        text NOT NULL REFERENCES orders (order_id),
    n               integer NOT NULL CHECK (n >= 1),
    status          text NOT NULL CHECK (status IN (
                        'REQUESTED', 'APPROVED', 'LABEL_SENT', 'IN_TRANSIT', 'ARRIVED',
                        'INSPECTED', 'REFUNDED', 'CLOSED', 'REJECTED')),
    reason          text NOT NULL,
    resolution      text NOT NULL DEFAULT 'refund',
    requested_by    text NOT NULL,
    -- The client's Idempotency-Key: the same request again finds this return.
    request_key     text,
    shipping_share  numeric(12, 2) NOT NULL DEFAULT 0,
    requested_at    timestamptz NOT NULL DEFAULT now(),
    carrier         text,
    tracking_number text UNIQUE,
    label_url       text,
    labelled_at     timestamptz,
    sent_at         timestamptz,
    arrived_at      timestamptz,
    inspected_at    timestamptz,
    closed_at       timestamptz,
    refund_amount   numeric(12, 2),
    UNIQUE (order_id, n),
    UNIQUE (order_id, request_key)
);
CREATE INDEX returns_open ON returns (status, requested_at)
    WHERE status NOT IN ('REFUNDED', 'CLOSED', 'REJECTED');

CREATE TABLE return_lines (
    return_id     text NOT NULL REFERENCES returns (return_id),
    order_id      text NOT NULL,
    sku           text NOT NULL,
    quantity      integer NOT NULL CHECK (quantity > 0),
    unit_price    numeric(12, 2) NOT NULL,
    outcome       text CHECK (outcome IN ('restock', 'dispose')),
    note          text,
    inspected_by  text,
    inspected_at  timestamptz,
    -- Orders a restock served: a retried inspection wakes them again, not none.
    served_orders text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (return_id, sku),
    FOREIGN KEY (order_id, sku) REFERENCES order_lines (order_id, sku)
);
