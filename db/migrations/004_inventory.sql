-- Inventory monitoring and forecasting: strict first-come queues, sales history, and the
-- replenishment plans the scheduled forecast decides.

-- A backordered order queues with every line, also the lines that were not short, so a later
-- order cannot take the stock it waits beside; those lines added nothing to a request.
ALTER TABLE backorders ALTER COLUMN request_id DROP NOT NULL;

-- Daily sales imported from before orderflow ran (or the demo history), by SKU and day.
CREATE TABLE sales_history (
    sku      text NOT NULL REFERENCES products (sku),
    day      date NOT NULL,
    quantity integer NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (sku, day)
);

-- Demand per SKU and (UTC) day: every order that was not cancelled or rejected counts on the
-- day it was placed, backordered ones too (they are demand the shelf could not meet), plus
-- the imported history.
CREATE VIEW daily_sales AS
    SELECT l.sku, (o.placed_at AT TIME ZONE 'UTC')::date AS day, sum(l.quantity)::integer AS quantity
    FROM order_lines l JOIN orders o ON o.order_id = l.order_id
    WHERE o.status NOT IN ('CANCELLED', 'REJECTED')
    GROUP BY l.sku, (o.placed_at AT TIME ZONE 'UTC')::date
    UNION ALL
    SELECT sku, day, quantity FROM sales_history;

-- What each replenishment run decided per SKU: the audit trail of reorder points and
-- order-up-to levels, and the key that applies a run's plan to a SKU only once.
CREATE TABLE replenishment_plans (
    run_key            text NOT NULL,
    sku                text NOT NULL REFERENCES products (sku),
    as_of              date NOT NULL,
    method             text NOT NULL,
    mean_daily_demand  double precision NOT NULL,
    sigma              double precision NOT NULL,
    safety_stock       integer NOT NULL,
    reorder_point      integer NOT NULL,
    order_up_to        integer NOT NULL,
    inventory_position integer NOT NULL,
    ordered            integer NOT NULL DEFAULT 0,
    request_id         bigint REFERENCES purchase_requests (id),
    planned_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_key, sku)
);
CREATE INDEX replenishment_plans_sku ON replenishment_plans (sku, planned_at);
