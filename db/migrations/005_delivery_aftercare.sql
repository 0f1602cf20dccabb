-- After the parcel leaves: replacement parcels, lost-parcel cases logistics resolves, feedback
-- tickets that hold completion, and who resolved them.

-- The order's current parcel: 0 the first booking, n the n-th replacement of a lost one.
-- Each booking has its own idempotency key at the carrier (order-<id>, order-<id>-reship-<n>).
ALTER TABLE shipments ADD COLUMN booking_no integer NOT NULL DEFAULT 0 CHECK (booking_no >= 0);

-- A parcel the carrier lost, or that never arrived after the last follow-up: logistics
-- resolves it by reshipping (replacement goods, a new booking) or refunding (order closed).
CREATE TABLE lost_parcels (
    order_id        text NOT NULL REFERENCES orders (order_id),
    case_no         integer NOT NULL CHECK (case_no >= 1),
    carrier         text NOT NULL,
    tracking_number text NOT NULL,
    reason          text NOT NULL,
    carrier_status  text,
    status          text NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'reshipped', 'refunded', 'found')),
    opened_at       timestamptz NOT NULL,
    -- the replacement's booking number, once its goods were taken from stock
    replacement_no  integer,
    replacement_lines jsonb,
    replacement_tracking_number text,
    resolved_at     timestamptz,
    resolved_by     text,
    resolution_note text,
    PRIMARY KEY (order_id, case_no)
);
CREATE INDEX lost_parcels_tracking ON lost_parcels (carrier, tracking_number);
CREATE INDEX lost_parcels_open ON lost_parcels (opened_at) WHERE status = 'open';

-- A delivery or product complaint during the quiet period holds the order's completion
-- until the department resolves it.
ALTER TABLE feedback_tickets ADD COLUMN requested_by text NOT NULL DEFAULT 'customer';
ALTER TABLE feedback_tickets ADD COLUMN holds_completion boolean NOT NULL DEFAULT false;
ALTER TABLE feedback_tickets ADD COLUMN resolved_by text;
ALTER TABLE feedback_tickets ADD COLUMN resolution text;
CREATE INDEX feedback_tickets_open ON feedback_tickets (department, created_at) WHERE status = 'open';
CREATE INDEX feedback_tickets_order ON feedback_tickets (order_id);

ALTER TABLE product_reviews ADD COLUMN reviewed_by text NOT NULL DEFAULT 'customer';

CREATE INDEX follow_ups_open ON follow_ups (opened_at) WHERE status = 'open';
