-- The risk review reads "the latest N before a moment": of one customer's orders, and of one
-- SKU's order lines. Ties in time are broken by order id in byte order (COLLATE "C"), as the
-- in-memory summary (policies/risk_history.py) does, so both give the same answer.

-- A customer's latest orders with their amounts, straight from the index.
CREATE INDEX IF NOT EXISTS orders_customer_placed_order_id
    ON orders (customer_id, placed_at, order_id COLLATE "C") INCLUDE (total, total_quantity);

-- A SKU's usual quantity per line needs its latest lines; without the order's time on the line
-- that is a join over every line the SKU ever had. The time is copied from the order when the
-- line is written (an order's placed_at never changes), so writers need not know about it.
ALTER TABLE order_lines ADD COLUMN IF NOT EXISTS placed_at timestamptz;

UPDATE order_lines ol
SET placed_at = o.placed_at
FROM orders o
WHERE o.order_id = ol.order_id AND ol.placed_at IS NULL;

CREATE OR REPLACE FUNCTION order_lines_copy_placed_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT placed_at INTO NEW.placed_at FROM orders WHERE order_id = NEW.order_id;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS order_lines_placed_at ON order_lines;
CREATE TRIGGER order_lines_placed_at BEFORE INSERT OR UPDATE OF order_id ON order_lines
    FOR EACH ROW EXECUTE FUNCTION order_lines_copy_placed_at();

CREATE INDEX IF NOT EXISTS order_lines_sku_placed
    ON order_lines (sku, placed_at, order_id COLLATE "C") INCLUDE (quantity);
