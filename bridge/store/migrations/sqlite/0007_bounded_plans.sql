-- 0007: what the worker runs per event reads an index that holds only what it may touch, so
-- that its cost per event does not grow with the queue or with the history (queries.sql says
-- how the statements read them; tests/store/test_plans.py holds the plans).

-- Indexes led by status or provider alone: without statistics SQLite took them and walked
-- every queued delivery (deliveries_due, to settle one delivery or to claim) or a provider's
-- whole history (deliveries_by_provider, and deliveries_claim, led by provider and status).
-- Nothing reads them any more; each cost every status change an update too.
DROP INDEX deliveries_due;
DROP INDEX deliveries_by_provider;
DROP INDEX deliveries_claim;

-- A key's unfinished deliveries in its queue's order: is anything ahead of this one, the
-- key's head, the key's followers (as deliveries_key_queue of PostgreSQL's 0004).
CREATE INDEX deliveries_key_queue
    ON deliveries (provider, correlate, event_received_at, event_id, seq)
    WHERE status IN ('pending', 'waiting', 'in_flight');

-- What a claim may take, oldest first: a provider's, and everyone's. A waiting delivery is
-- never claimable: it is behind an unfinished one of its key.
CREATE INDEX deliveries_claim ON deliveries (provider, seq)
    WHERE status IN ('pending', 'in_flight');
CREATE INDEX deliveries_claim_all ON deliveries (seq)
    WHERE status IN ('pending', 'in_flight');

-- A provider's first pending delivery by due time (next_wakeup), and the earliest lease.
CREATE INDEX deliveries_pending_due ON deliveries (provider, next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX deliveries_leases ON deliveries (lease_until) WHERE status = 'in_flight';

-- A key's latest delivery of a folding rule (storm folding), past the key's other deliveries.
CREATE INDEX deliveries_folds
    ON deliveries (provider, correlate, rule, event_received_at, event_id, seq)
    WHERE fold_until IS NOT NULL;

-- The deliveries a dead one killed, which retrying it queues again (as on PostgreSQL, 0002).
CREATE INDEX deliveries_blocked_by ON deliveries (blocked_by) WHERE blocked_by IS NOT NULL;

-- A waiting delivery is always behind an unfinished one of its key. Before 0007 a fallback
-- that moved what it waited behind could leave it waiting first in its queue (claimable all
-- the same); it is pending now, as a fallback leaves it from 0007 on.
UPDATE deliveries SET status = 'pending'
WHERE status = 'waiting' AND NOT EXISTS (
    SELECT 1 FROM deliveries AS e
    WHERE e.provider = deliveries.provider AND e.correlate = deliveries.correlate
      AND (e.event_received_at, e.event_id, e.seq)
          < (deliveries.event_received_at, deliveries.event_id, deliveries.seq)
      AND e.status IN ('pending', 'waiting', 'in_flight'));
