-- 0002: per-key ordering made visible, and providers held back.

-- The dead delivery whose death killed this one (a later action of the same correlate key);
-- retrying that delivery queues this one again behind it.
ALTER TABLE deliveries ADD COLUMN blocked_by TEXT;

-- The worker claims per provider: due deliveries of one provider, in creation order.
CREATE INDEX deliveries_claim ON deliveries (provider, status, next_attempt_at);

-- A provider nothing is sent to until `until`: paused after a 401/403, or its circuit open.
CREATE TABLE provider_holds (
    provider TEXT PRIMARY KEY,
    state    TEXT NOT NULL CHECK (state IN ('paused', 'circuit_open')),
    since    REAL NOT NULL,
    until    REAL NOT NULL,
    reason   TEXT NOT NULL
) WITHOUT ROWID;
