-- The notification outbox as a delivery queue: a row is claimed with a lease,
-- sent over SMTP, and marked sent only after the server accepted it (250).
--
-- status:      pending -> sending (claimed, leased) -> sent
--                                  sending -> pending (refused / failed, backoff) -> ...
--                                  sending -> failed  (after outbox_max_attempts)
--              failed  -> pending  (an admin's retry, attempts reset)
-- attempts:    claims so far: each claim is an attempt, so a row whose dispatcher keeps
--              dying ends `failed` too instead of being retried for ever.
-- lease_until: while `sending`, the claim is the holder's until then; after it, any
--              dispatcher may claim the row again (the holder has crashed or hung).
-- lease_token: the fencing token of the current claim: only its holder may mark the row
--              sent or failed, so a late dispatcher cannot overwrite a newer claim.
-- next_attempt_at: when the row is next due. For a `sending` row it equals lease_until,
--              so one index and one condition find both due and abandoned rows.
-- accepted_at / sent_at: when the SMTP server answered 250 (sent_at keeps that meaning
--              for readers of the old column).

ALTER TABLE notifications
    ADD COLUMN status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    ADD COLUMN attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    ADD COLUMN lease_until timestamptz,
    ADD COLUMN lease_token uuid,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN last_attempt_at timestamptz,
    ADD COLUMN last_error text,
    ADD COLUMN accepted_at timestamptz,
    ADD COLUMN failed_at timestamptz;

-- Rows the old dispatcher already took (it marked them at claim time) count as sent.
UPDATE notifications SET status = 'sent', accepted_at = sent_at WHERE sent_at IS NOT NULL;

DROP INDEX IF EXISTS notifications_unsent;
-- The dispatchers' scan: due pending rows and sending rows whose lease has run out.
CREATE INDEX notifications_due ON notifications (next_attempt_at, id)
    WHERE status IN ('pending', 'sending');
-- Customer service's queue and `orderflow mail outbox --status failed`.
CREATE INDEX notifications_failed ON notifications (failed_at, id) WHERE status = 'failed';
