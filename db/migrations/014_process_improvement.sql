-- Improving the process: difficulties staff meet with a step (process issues), dated changes
-- to how the process runs (process changes, with the settings last seen at a start so the
-- next start can record what differs), and the weekly review pack built for the meeting.

CREATE TABLE process_issues (
    ticket_id   text PRIMARY KEY,
    step        smallint NOT NULL CHECK (step BETWEEN 1 AND 8),
    department  text NOT NULL,
    -- The order that showed the difficulty, when there is one (no foreign key: an order
    -- placed a moment ago may not be recorded yet; the API checks it was placed).
    order_id    text,
    description text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    status      text NOT NULL DEFAULT 'open'
                CHECK (status IN ('open', 'in_progress', 'resolved')),
    raised_by   text NOT NULL,
    raised_at   timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    started_by  text,
    resolved_at timestamptz,
    resolved_by text,
    resolution  text,
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL)),
    CHECK (status <> 'resolved' OR resolution IS NOT NULL)
);
CREATE INDEX process_issues_waiting ON process_issues (department, raised_at)
    WHERE status <> 'resolved';
CREATE INDEX process_issues_raised ON process_issues (raised_at, ticket_id);

CREATE TABLE process_changes (
    id          bigserial PRIMARY KEY,
    -- A dotted setting name, e.g. `order_policy.review_sla` or `risk_weights.new_customer`.
    setting     text NOT NULL,
    -- The steps whose figures the change should move (the before/after report reads them).
    steps       smallint[] NOT NULL,
    old_value   jsonb,
    new_value   jsonb,
    changed_by  text NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now(),
    reason      text NOT NULL,
    source      text NOT NULL CHECK (source IN ('configuration', 'operator')),
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX process_changes_at ON process_changes (changed_at, id);

-- The process settings as one start saw them; the latest row is what the next start
-- compares its own settings with.
CREATE TABLE process_settings_snapshots (
    id          bigserial PRIMARY KEY,
    settings    jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    recorded_by text NOT NULL
);

CREATE TABLE process_review_packs (
    week_start timestamptz PRIMARY KEY,
    week_end   timestamptz NOT NULL,
    pack       jsonb NOT NULL,
    html       text NOT NULL,
    built_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (week_end > week_start)
);
