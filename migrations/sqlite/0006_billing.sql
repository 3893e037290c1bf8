-- Billing with Stripe (issue 14). Times are unix seconds.

-- The state of each Stripe subscription as its own newest snapshot says (never arrival
-- order): `snapshot_at`/`snapshot_rank` are the event time and kind (created 0, updated 1,
-- deleted 2) of the snapshot applied last; an older one is ignored. `grace_until` is set by a
-- failed payment and cleared by a later successful one; `paid_at` is the newest successful
-- payment's event time (a failure older than it starts no grace).
ALTER TABLE subscriptions ADD COLUMN cancel_at_period_end INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN grace_until BIGINT;
ALTER TABLE subscriptions ADD COLUMN snapshot_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN snapshot_rank INTEGER NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN paid_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX subscriptions_customer ON subscriptions (stripe_customer_id);

-- Every webhook event id seen, so a redelivery (or the same event reaching two nodes at once)
-- is applied once: inserted first in the event's transaction, `ON CONFLICT DO NOTHING`. Kept at
-- least 30 days (Stripe retries for 3); no sweep deletes them yet.
CREATE TABLE stripe_events (
    id           TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    created      BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    outcome      TEXT NOT NULL
);
CREATE INDEX stripe_events_received ON stripe_events (received_at);

-- One row per money event and per tier change (or both at once), shown to the account owner
-- by GET /api/subscription/history.
CREATE TABLE billing_audit (
    id            TEXT PRIMARY KEY,
    profile_id    TEXT NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
    event_id      TEXT,
    kind          TEXT NOT NULL,
    from_tier     TEXT NOT NULL,
    to_tier       TEXT NOT NULL,
    amount_cents  BIGINT,
    currency      TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX billing_audit_profile ON billing_audit (profile_id, created_at);
