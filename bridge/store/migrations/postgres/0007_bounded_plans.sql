-- 0007: what the worker runs per event reads an index that holds only what it may touch, so
-- that its cost per event does not grow with the queue or with the history (queries.sql says
-- how the statements read them; tests/store/test_plans.py holds the plans).

-- deliveries_due led by status: a claim read every queued delivery through it (a bitmap of
-- the whole queue, then a sort). deliveries_claim and deliveries_unfinished (0002) held the
-- waiting deliveries too, which a claim never takes. Nothing reads deliveries_by_provider.
-- Each index also cost every status change a new entry.
DROP INDEX deliveries_due;
DROP INDEX deliveries_by_provider;
DROP INDEX deliveries_claim;
DROP INDEX deliveries_unfinished;

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

-- A waiting delivery is always behind an unfinished one of its key. Before 0007 a fallback
-- that moved what it waited behind could leave it waiting first in its queue (claimable all
-- the same); it is pending now, as a fallback leaves it from 0007 on.
UPDATE deliveries AS d SET status = 'pending'
WHERE d.status = 'waiting' AND NOT EXISTS (
    SELECT 1 FROM deliveries AS e
    WHERE e.provider = d.provider AND e.correlate = d.correlate
      AND (e.event_received_at, e.event_id, e.seq) < (d.event_received_at, d.event_id, d.seq)
      AND e.status IN ('pending', 'waiting', 'in_flight'));
