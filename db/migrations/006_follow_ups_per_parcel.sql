-- Follow-ups belong to a parcel: a replacement of a lost parcel starts its own attempts at 1.
ALTER TABLE follow_ups ADD COLUMN booking_no integer NOT NULL DEFAULT 0 CHECK (booking_no >= 0);
ALTER TABLE follow_ups DROP CONSTRAINT follow_ups_pkey;
ALTER TABLE follow_ups ADD PRIMARY KEY (order_id, booking_no, attempt);
