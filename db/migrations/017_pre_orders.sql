-- Pre-orders: a product may carry the date it is released; an order with such a line waits
-- for it (without reserving) and then goes on as any order.
ALTER TABLE products ADD COLUMN release_at timestamptz;

CREATE TABLE pre_orders (
    order_id    text PRIMARY KEY REFERENCES orders (order_id),
    skus        text[] NOT NULL,
    release_at  timestamptz NOT NULL,
    status      text NOT NULL DEFAULT 'waiting' CHECK (status IN ('waiting', 'released')),
    moves       integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    released_at timestamptz
);
CREATE INDEX pre_orders_waiting ON pre_orders USING gin (skus) WHERE status = 'waiting';
