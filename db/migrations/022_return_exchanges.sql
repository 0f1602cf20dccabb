-- Exchanges: a returned line may ask for the same item again instead of the money back.
-- The replacement is an order of its own, linked to the return that placed it.
ALTER TABLE return_lines ADD COLUMN resolution text NOT NULL DEFAULT 'refund'
    CHECK (resolution IN ('refund', 'exchange'));
ALTER TABLE returns ADD COLUMN replacement_order_id text UNIQUE;

-- A return whose every line was exchanged ends EXCHANGED: nothing to refund, not closed.
ALTER TABLE returns DROP CONSTRAINT returns_status_check;
ALTER TABLE returns ADD CONSTRAINT returns_status_check CHECK (status IN (
    'REQUESTED', 'APPROVED', 'LABEL_SENT', 'IN_TRANSIT', 'ARRIVED',
    'INSPECTED', 'REFUNDED', 'EXCHANGED', 'CLOSED', 'REJECTED'));
DROP INDEX returns_open;
CREATE INDEX returns_open ON returns (status, requested_at)
    WHERE status NOT IN ('REFUNDED', 'EXCHANGED', 'CLOSED', 'REJECTED');
