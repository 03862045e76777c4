-- 0002: per-key ordering made visible, and providers held back.

-- The dead delivery whose death killed this one (a later action of the same correlate key);
-- retrying that delivery queues this one again behind it.
ALTER TABLE deliveries ADD COLUMN blocked_by text;

CREATE INDEX deliveries_blocked_by ON deliveries (blocked_by) WHERE blocked_by IS NOT NULL;

-- The worker claims per provider: unfinished deliveries of one provider, in creation order.
-- Partial, so that it stays as small as the queue however long the history grows.
CREATE INDEX deliveries_claim ON deliveries (provider, seq)
    WHERE status IN ('pending', 'waiting', 'in_flight');
CREATE INDEX deliveries_unfinished ON deliveries (seq)
    WHERE status IN ('pending', 'waiting', 'in_flight');

-- A provider nothing is sent to until `until`: paused after a 401/403, or its circuit open.
CREATE TABLE provider_holds (
    provider text PRIMARY KEY,
    state    text NOT NULL CHECK (state IN ('paused', 'circuit_open')),
    since    double precision NOT NULL,
    until    double precision NOT NULL,
    reason   text NOT NULL
);
