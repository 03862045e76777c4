-- Every statement of the store, by name, for both databases (procrastinate's sql/queries.sql
-- is the model). bridge.store.statements reads this file:
--   -- name: NAME               a statement (or a piece of one) for every dialect
--   -- name: NAME (postgres)    the variant one dialect runs instead; an empty body: nothing to run
--   :param                      a named parameter (a list is an array: see `in_list`)
--   {name} / {name:arg}         another piece of this file, or a fragment of the dialect table
-- Statuses are written as their values (bridge.store.base; the CHECK constraints name them too).
--
-- Plans. What the worker runs per event reads an index that holds only what it may touch, never
-- the history of finished deliveries nor the whole queue to find one row (migrations 0007;
-- tests/store/test_plans.py holds the plans). Partial indexes hold a key's unfinished deliveries
-- (deliveries_key_queue), the claimable ones (deliveries_claim, by provider), the
-- pending ones by due time (deliveries_pending_due), the leases (deliveries_leases). A statement
-- that reads one writes the index's condition in its very words (`status IN {unfinished}`,
-- `status IN {claimable}`, `status = 'pending'`), even beside a narrower term: SQLite takes a
-- partial index only for a term written as its WHERE. No index is led by status alone: without
-- statistics, SQLite took such an index to settle one delivery and walked every queued one.
-- Conversely, a statement that finds rows by id or seq checks their status in words no
-- partial index's WHERE follows from ({status_in:...}, or none at all): on statistics taken
-- before a burst PostgreSQL believes the queue's partial indexes empty, and would walk one
-- whole rather than look the rows up (test_plans, "analyzed at a burst"). A key's queue is
-- read by the whole key (deliveries_key_queue is led by the correlate), per key (LATERAL).

-- name: unfinished
('pending', 'waiting', 'in_flight')

-- name: queued
('pending', 'waiting')

-- name: final
('done', 'skipped', 'dead', 'cancelled')

-- What a claim may take: pending (when due) or in flight (when its lease ran out). A waiting
-- delivery is never claimable: it is always behind an unfinished one of its key (what would
-- leave it first in its queue makes it pending: release_next, settle_head).
-- name: claimable
('pending', 'in_flight')

-- name: pending
('pending')

-- `status IN {arg}` in words no partial index's WHERE follows from: for a row found by its id
-- or seq, whose status is checked, not looked up (see "Plans" above).
-- name: status_in
coalesce(status IN {{arg}}, false)

-- name: event_columns
ev.id, ev.source, ev.received_at, ev.headers, ev.query, ev.payload, ev.content_type,
ev.dedupe_key, ev.status, ev.routed_at, ev.matched_rules, ev.trace, (ev.raw IS NOT NULL OR ev.raw_is_payload) AS has_raw

-- name: attempt_columns
delivery_id, number, started_at, duration, outcome, status_code, error, response_excerpt

-- name: key_order
({arg}.event_received_at, {arg}.event_id, {arg}.seq)

-- Read from `deliveries AS d`. A waiting delivery's blocked_by is the one just before it in its
-- key's queue, looked up when read (it changes as the key's deliveries finish).
-- name: delivery_columns
d.seq, d.id, d.event_id, d.rule, d.provider, d.action, d.correlate, d.status, d.attempts,
d.tries, d.created_at, d.queued_at, d.next_attempt_at, d.last_error, d.ticket_ref, d.moved_from,
d.folded, d.folded_into,
CASE WHEN d.status = 'waiting' THEN (
    SELECT e.id FROM deliveries AS e
    WHERE e.provider = d.provider AND e.correlate = d.correlate
      AND {key_order:e} < {key_order:d} AND e.status IN {unfinished}
    ORDER BY e.event_received_at DESC, e.event_id DESC, e.seq DESC LIMIT 1)
ELSE d.blocked_by END AS blocked_by

-- A keyed delivery `d` is behind its key while a delivery before it in its key's queue (by its
-- event's arrival, then by creation) is unfinished.
-- name: behind_its_key
d.correlate IS NOT NULL AND EXISTS (
    SELECT 1 FROM deliveries AS e
    WHERE e.provider = d.provider AND e.correlate = d.correlate
      AND {key_order:e} < {key_order:d} AND e.status IN {unfinished})

-- `d` may go: not behind its key; no other of its key in flight under a live lease (the order
-- makes that impossible unless two routers of one event both stored deliveries after a lease
-- ran out); no event that arrived before its own unrouted (it may bring an earlier action for
-- the key; an event whose router died holds them until its routing lease runs out).
-- name: may_go
NOT ({behind_its_key})
AND NOT (d.correlate IS NOT NULL AND EXISTS (
    SELECT 1 FROM deliveries AS f
    WHERE f.provider = d.provider AND f.correlate = d.correlate AND f.seq <> d.seq
      AND f.status IN {unfinished}
      AND CASE f.status WHEN 'in_flight' THEN f.lease_until >= :now ELSE FALSE END))
AND NOT (d.correlate IS NOT NULL AND EXISTS (
    SELECT 1 FROM oldest_unrouted AS o
    WHERE (o.received_at, o.id) < (d.event_received_at, d.event_id)))

-- The earliest event not routed yet (none, nearly always), for may_go: read once per statement
-- from events_unrouted in its order. Asked per candidate as "is there an unrouted event before
-- this one", PostgreSQL planned on statistics taken at a burst (a third of the events
-- unrouted) a scan of the whole events table per candidate, expecting to meet one soon (bench
-- backlog, 10,000 waiting: 9 ms a claim).
-- name: oldest_unrouted
oldest_unrouted AS MATERIALIZED (
    SELECT received_at, id FROM events WHERE routed_at IS NULL
    ORDER BY received_at, id LIMIT 1)

-- name: not_held
d.provider NOT IN (SELECT provider FROM provider_holds WHERE until > :now)

-- name: ping
SELECT max(version) AS version FROM schema_migrations

-- New work for the workers of every process (PostgreSQL delivers a NOTIFY when its transaction
-- commits, once per channel and payload); SQLite's workers in other processes poll instead.
-- name: notify_work

-- name: notify_work (postgres)
SELECT pg_notify('ticketbridge', '')

-- == the receiver ==============================================================================

-- Take the key: new, or older than the window (it points at the new event from then on). No row
-- back: an event inside the window holds it. An upsert, not a look-up then an insert: of two
-- transactions inserting one key, the second waits for the first and then sees its row.
-- name: claim_dedupe
INSERT INTO dedupe AS dd (source, key, event_id, created_at)
VALUES (:source, :key, :id, :now)
ON CONFLICT (source, key) DO UPDATE SET event_id = excluded.event_id,
                                        created_at = excluded.created_at
WHERE dd.created_at <= :since
RETURNING event_id

-- name: first_with_key
SELECT event_id FROM dedupe WHERE source = :source AND key = :key

-- name: insert_event
INSERT INTO events (id, source, received_at, headers, query, payload, raw, raw_is_payload,
                    content_type, dedupe_key, status)
VALUES (:id, :source, :received_at, :headers, :query, :payload, :raw, :raw_is_payload,
        :content_type, :dedupe_key, :status)

-- == routing ===================================================================================

-- name: claim_unrouted
WITH due AS (
    SELECT id AS due_id FROM events
    WHERE routed_at IS NULL AND (route_lease_until IS NULL OR route_lease_until < :now)
    ORDER BY received_at, id LIMIT :limit
    {skip_locked})
UPDATE events SET route_lease_until = :until FROM due WHERE events.id = due.due_id
RETURNING id, source, received_at, headers, query, payload, content_type, dedupe_key, status,
          routed_at, matched_rules, trace, (raw IS NOT NULL OR raw_is_payload) AS has_raw

-- Of two routers whose leases overlapped, the second waits here for the first to commit, then
-- reads the event as the first left it: routed. Locked in id order, as every transaction
-- locks event rows.
-- name: events_to_route
SELECT id, received_at, routed_at FROM events WHERE id {in_list:ids} ORDER BY id {for_update}

-- name: supersede_dead
UPDATE deliveries SET status = 'cancelled',
       last_error = 'superseded by a replay; was: ' || COALESCE(last_error, 'dead')
WHERE event_id = :event_id AND status = 'dead'

-- name: insert_delivery
INSERT INTO deliveries (id, event_id, event_received_at, rule, provider, action, correlate,
                        status, created_at, queued_at, next_attempt_at, last_error, fold_until,
                        folded, folded_into)
VALUES (:id, :event_id, :event_received_at, :rule, :provider, :action, :correlate, :status,
        :created_at, :created_at, :next_attempt_at, :last_error, :fold_until, :folded,
        :folded_into)

-- The key's latest delivery of a folding rule (see bridge/folding.py).
-- name: latest_fold
SELECT id, status IN {queued} AND attempts = 0 AS queued_unsent, fold_until, folded, action
FROM deliveries
WHERE provider = :provider AND correlate = :correlate AND rule = :rule
  AND fold_until IS NOT NULL
ORDER BY event_received_at DESC, event_id DESC, seq DESC LIMIT 1

-- An event joins a note: its list and text grow; a full one goes at once (:due).
-- name: join_fold
UPDATE deliveries
SET folded = :folded, action = :action, fold_until = :fold_until, next_attempt_at = :due
WHERE id = :id

-- name: mark_routed
UPDATE events SET routed_at = :now, matched_rules = :matched_rules, trace = :trace,
                  route_lease_until = NULL
WHERE id = :event_id

-- == a key's queue =============================================================================

-- Hold these "provider|correlate" names to the end of the transaction, in the order given.
-- name: lock_keys

-- name: lock_keys (postgres)
SELECT pg_advisory_xact_lock(hashtextextended(name, 0)) FROM unnest(:names::text[]) AS name

-- Queued deliveries just added or queued again (rows this transaction wrote and holds):
-- waiting while one before them is unfinished. Only a status that changes is written (most
-- new deliveries are pending, as stored). The listed deliveries are found by id, in a CTE
-- read first, and updated by seq alone (see "Plans" above: no status term that implies a
-- partial index's WHERE).
-- name: settle_queued
WITH listed AS MATERIALIZED (
    SELECT seq FROM deliveries WHERE id {in_list:ids} AND {status_in:queued})
UPDATE deliveries AS d
SET status = CASE WHEN {behind_its_key} THEN 'waiting' ELSE 'pending' END
WHERE d.seq IN (SELECT seq FROM listed)
  AND d.status <> CASE WHEN {behind_its_key} THEN 'waiting' ELSE 'pending' END

-- Pending deliveries of the key after one just settled (their events arrived later, but were
-- routed first) wait behind it. Each listed key's queue is read by a LATERAL lookup (a probe
-- of deliveries_key_queue per key, whatever the statistics say); the rows are updated by seq,
-- their status checked again without implying a partial index (a claim may take one
-- meanwhile).
-- name: hold_back_later
WITH listed AS MATERIALIZED (
    SELECT provider, correlate, event_received_at, event_id, seq FROM deliveries
    WHERE id {in_list:ids} AND {status_in:queued}),
later AS MATERIALIZED (SELECT d.seq FROM listed {each_row_joins:behind_listed})
UPDATE deliveries SET status = 'waiting'
WHERE seq IN (SELECT seq FROM later) AND {status_in:pending}

-- name: behind_listed
d.correlate = listed.correlate AND d.provider = listed.provider
AND {key_order:d} > {key_order:listed} AND d.status IN {unfinished} AND d.id {not_in_list:ids}

-- The id of the key's (:provider, :correlate) first unfinished delivery if it is waiting,
-- else NULL: the statements below update it by id alone (see "Plans" above).
-- name: waiting_head
SELECT CASE WHEN status = 'waiting' THEN id END FROM deliveries
WHERE provider = :provider AND correlate = :correlate AND status IN {unfinished}
ORDER BY event_received_at, event_id, seq LIMIT 1

-- The key's first unfinished delivery, if it is waiting, may go now (a note of storm
-- folding: when its window closes).
-- name: release_next
UPDATE deliveries SET status = 'pending',
    next_attempt_at = CASE WHEN folded IS NOT NULL AND fold_until > :now THEN fold_until
                           ELSE :now END
WHERE id = ({waiting_head})

-- What it waited behind went elsewhere (a fallback) and left the key's first unfinished
-- delivery waiting: it is pending, due when it was (nothing else changes; a claim took it
-- waiting before, and takes it pending now).
-- name: settle_head
UPDATE deliveries SET status = 'pending' WHERE id = ({waiting_head})

-- name: kill_followers
UPDATE deliveries AS d SET status = 'dead', blocked_by = :id, next_attempt_at = NULL,
                           last_error = :message
WHERE d.provider = :provider AND d.correlate = :correlate
  AND {key_order:d} > (:event_received_at, :event_id, :seq)
  AND d.status IN {unfinished} AND d.status IN {queued}
RETURNING event_id

-- == a provider's fallback ======================================================================

-- The deliveries to send elsewhere, in their keys' order: these ones (a delivery that died and
-- those queued behind it) or a held provider's queue, leaving out what already moved once.
-- name: movable
SELECT d.id, d.event_id, d.event_received_at, d.seq, d.rule, d.provider, d.correlate, d.action
FROM deliveries AS d
WHERE d.moved_from IS NULL AND d.action IS NOT NULL AND {{arg}}
ORDER BY d.event_received_at, d.event_id, d.seq
LIMIT :limit

-- A delivery that just died, and the deliveries queued behind it on its key (queued, in words
-- that imply no deliveries_movable: see "Plans" above).
-- name: movable_from_dead
{movable:dead_and_followers}

-- name: dead_and_followers
(d.id = :id OR (d.provider = :provider AND d.correlate = :correlate
                AND d.status IN {unfinished} AND {status_in:queued}
                AND {key_order:d} > (:event_received_at, :event_id, :seq)))

-- A held provider's queue.
-- name: movable_of_provider
{movable:queued_of_provider}

-- name: queued_of_provider
d.provider = :provider AND d.status IN {unfinished} AND d.status IN {queued}

-- name: insert_moved
INSERT INTO deliveries (id, event_id, event_received_at, rule, provider, action, correlate,
                        status, created_at, queued_at, next_attempt_at, moved_from)
VALUES (:id, :event_id, :event_received_at, :rule, :provider, :action, :correlate, 'pending',
        :now, :now, :now, :moved_from)

-- name: cancel_moved
UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, last_error = :message
WHERE id = :id

-- name: move_ticket
INSERT INTO tickets AS t (provider, correlate, moved_to, updated_at)
VALUES (:provider, :correlate, :moved_to, :now)
ON CONFLICT (provider, correlate) DO UPDATE
SET moved_to = excluded.moved_to, updated_at = excluded.updated_at

-- Where keys' tickets went (a superset of the keys, as tickets_of_keys).
-- name: moved_keys
SELECT provider, correlate, moved_to FROM tickets
WHERE provider {in_list:providers} AND correlate {in_list:correlates} AND moved_to IS NOT NULL

-- The event's status follows its deliveries: none -> unmatched, any dead -> failed, all final
-- -> done, else accepted (and accepted while not routed at all). The row is written only when
-- the status changes: it holds the body, and most calls (a routing, a retry) change nothing.
-- name: recompute_event_status
WITH computed AS (
    SELECT CASE
        WHEN ev.routed_at IS NULL THEN 'accepted'
        WHEN count(d.id) = 0 THEN 'unmatched'
        WHEN count(d.id) FILTER (WHERE d.status = 'dead') > 0 THEN 'failed'
        WHEN count(d.id) FILTER (WHERE d.status IN {final}) = count(d.id) THEN 'done'
        ELSE 'accepted'
    END AS status
    FROM events AS ev LEFT JOIN deliveries AS d ON d.event_id = ev.id
    WHERE ev.id = :event_id
    GROUP BY ev.id, ev.routed_at)
UPDATE events SET status = computed.status FROM computed
WHERE events.id = :event_id AND events.status <> computed.status

-- == the delivery step =========================================================================

-- Due (or in flight with a lapsed lease), free to go by its key, not held; oldest first; rows
-- another transaction holds are passed over, never waited for. The piece named by arg narrows
-- the providers: claim_due_all, claim_due_one (:provider).
-- Read in seq order from the claimable deliveries only (deliveries_claim by provider; walked
-- whole for claim_due_all, which the worker never runs); the CASE, which no index can serve,
-- keeps a planner from collecting every due delivery by its due time to sort them.
-- name: claim_due
WITH {oldest_unrouted}, due AS (
    SELECT d.seq AS due_seq FROM deliveries AS d
    WHERE d.status IN {claimable}
      AND CASE d.status WHEN 'pending' THEN d.next_attempt_at <= :now
                        ELSE d.lease_until < :now END
      AND {may_go} AND {not_held} {{arg}}
    ORDER BY d.seq LIMIT :limit
    {skip_locked_of:d})
UPDATE deliveries SET status = 'in_flight', lease_until = :until,
    lease_token = CAST(:token AS TEXT) || '.' || CAST(seq AS TEXT)
FROM due WHERE deliveries.seq = due.due_seq
RETURNING lease_token, seq, id, event_id, event_received_at, rule, provider, action, correlate,
          status, attempts, tries, created_at, queued_at, next_attempt_at, last_error,
          ticket_ref, blocked_by, moved_from, folded, folded_into

-- name: claim_due_all
{claim_due:claim_all}

-- name: claim_due_one
{claim_due:claim_one_provider}

-- name: claim_all

-- name: claim_one_provider
AND d.provider = :provider

-- The providers that have claimable deliveries: as many lookups of deliveries_claim as there are
-- providers (a loose index scan), not one per delivery.
-- name: working_providers
working (provider) AS (
    SELECT min(provider) FROM deliveries WHERE status IN {claimable}
    UNION ALL
    SELECT (SELECT min(c.provider) FROM deliveries AS c
            WHERE c.status IN {claimable} AND c.provider > w.provider)
    FROM working AS w WHERE w.provider IS NOT NULL)

-- name: unnamed_providers
WITH RECURSIVE {working_providers}
SELECT provider FROM working WHERE provider IS NOT NULL AND provider {not_in_list:named}

-- name: events_by_id
SELECT {event_columns} FROM events AS ev WHERE ev.id {in_list:ids}

-- A superset of the keys' tickets (each provider with each correlate); the caller picks.
-- name: tickets_of_keys
SELECT provider, correlate, ticket_ref, open FROM tickets
WHERE provider {in_list:providers} AND correlate {in_list:correlates}

-- A delivery holds a lease_token only while it is in flight (a claim sets it, every way out
-- of in_flight clears it), so the token alone says the lease is still this claim's (see
-- "Plans" above: no status term).
-- name: extend_lease
UPDATE deliveries SET lease_until = :until WHERE id = :id AND lease_token = :token

-- name: held_delivery
SELECT seq, event_id, event_received_at, rule, provider, correlate FROM deliveries
WHERE id = :id AND lease_token = :token
{for_update}

-- The listed deliveries as finish_attempts checks them (in flight, with the claim's token):
-- by id alone (a status beside the list could lead PostgreSQL's generic plan into a whole
-- queue's index; see settle_queued), locked in id order.
-- name: held_deliveries
SELECT id, status, lease_token, seq, event_id, event_received_at FROM deliveries
WHERE id {in_list:ids} ORDER BY id {for_update}

-- name: insert_attempt
INSERT INTO attempts ({attempt_columns})
VALUES (:delivery_id, :number, :started_at, :duration, :outcome, :status_code, :error,
        :response_excerpt)

-- name: finish_delivery
UPDATE deliveries
SET attempts = attempts + 1, tries = tries + :spent, status = :status,
    next_attempt_at = :next_attempt_at, last_error = :last_error,
    ticket_ref = coalesce(:ticket_ref, ticket_ref), lease_until = NULL, lease_token = NULL
WHERE id = :id

-- name: upsert_ticket
INSERT INTO tickets AS t (provider, correlate, ticket_ref, open, updated_at)
VALUES (:provider, :correlate, :ticket_ref, :open, :now)
ON CONFLICT (provider, correlate) DO UPDATE
SET ticket_ref = coalesce(excluded.ticket_ref, t.ticket_ref),
    open = coalesce(excluded.open, t.open),
    updated_at = excluded.updated_at

-- Per provider (not skipped, not held) the first pending delivery that may go, read in due
-- order from deliveries_pending_due (a waiting one never may: see `claimable`); the earliest
-- delivery lease, the earliest routing lease (or arrival, for an event nobody leased yet),
-- the end of the earliest hold.
-- name: next_wakeup
WITH RECURSIVE {working_providers}, {oldest_unrouted}
SELECT min(due) AS due FROM (
    SELECT (SELECT d.next_attempt_at FROM deliveries AS d
            WHERE d.status = 'pending' AND d.provider = w.provider
              AND d.next_attempt_at IS NOT NULL AND {may_go}
            ORDER BY d.next_attempt_at LIMIT 1) AS due
    FROM working AS w
    WHERE w.provider IS NOT NULL AND w.provider {not_in_list:skip}
      AND w.provider NOT IN (SELECT provider FROM provider_holds WHERE until > :now)
    UNION ALL
    SELECT min(lease_until) FROM deliveries WHERE status = 'in_flight'
    UNION ALL
    SELECT min(coalesce(route_lease_until, received_at)) FROM events WHERE routed_at IS NULL
    UNION ALL
    SELECT min(until) FROM provider_holds WHERE until > :now
) AS wakeups

-- == pacing: holds and token buckets ===========================================================

-- name: upsert_hold
INSERT INTO provider_holds (provider, state, since, until, reason)
VALUES (:provider, :state, :since, :until, :reason)
ON CONFLICT (provider) DO UPDATE
SET state = excluded.state, since = excluded.since, until = excluded.until,
    reason = excluded.reason

-- name: release_hold
DELETE FROM provider_holds WHERE provider = :provider

-- name: holds
SELECT provider, state, since, until, reason FROM provider_holds ORDER BY provider

-- name: bucket
SELECT tokens, at FROM rate_buckets WHERE provider = :provider

-- The claim that spends a bucket's tokens holds its row: processes take turns, never spend a
-- token twice. A provider never paced before gets its row (a full bucket) first, to be locked.
-- name: locked_bucket
SELECT tokens, at FROM rate_buckets WHERE provider = :provider {for_update}

-- name: new_bucket
INSERT INTO rate_buckets (provider, tokens, at) VALUES (:provider, :tokens, :now)
ON CONFLICT (provider) DO NOTHING

-- name: save_bucket
UPDATE rate_buckets SET tokens = :tokens, at = :now WHERE provider = :provider

-- == reading and steering ======================================================================

-- name: list_events
SELECT {event_columns} FROM events AS ev
WHERE (CAST(:source AS TEXT) IS NULL OR ev.source = :source) AND (CAST(:status AS TEXT) IS NULL OR ev.status = :status)
  AND (CAST(:before AS TEXT) IS NULL OR ev.id < :before)
  AND (CAST(:since AS double precision) IS NULL OR ev.received_at >= :since) AND (CAST(:until AS double precision) IS NULL OR ev.received_at < :until)
ORDER BY ev.id DESC LIMIT :limit

-- name: event
SELECT {event_columns} FROM events AS ev WHERE ev.id = :id

-- name: attempts_of_event
SELECT {attempt_columns} FROM attempts
WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = :id) ORDER BY number, id

-- name: deliveries_of_event
SELECT {delivery_columns} FROM deliveries AS d WHERE d.event_id = :id ORDER BY d.seq

-- name: raw
SELECT raw, raw_is_payload, payload FROM events WHERE id = :id

-- name: delivery
SELECT {delivery_columns} FROM deliveries AS d WHERE d.id = :id

-- name: attempts_of_delivery
SELECT {attempt_columns} FROM attempts WHERE delivery_id = :id ORDER BY number, id

-- name: list_deliveries
SELECT {delivery_columns} FROM deliveries AS d
WHERE (CAST(:status AS TEXT) IS NULL OR d.status = :status) AND (CAST(:provider AS TEXT) IS NULL OR d.provider = :provider)
ORDER BY d.seq DESC LIMIT :limit

-- name: delivery_key
SELECT provider, correlate FROM deliveries WHERE id = :id

-- name: blocker
SELECT b.id FROM deliveries AS d JOIN deliveries AS b ON b.id = d.blocked_by
WHERE d.id = :id AND d.status = 'dead' AND b.status = 'dead'

-- A done delivery is not sent again: that would make a second ticket.
-- name: retry
UPDATE deliveries
SET status = 'pending', tries = 0, queued_at = :now, next_attempt_at = :now,
    lease_until = NULL, lease_token = NULL, blocked_by = NULL
WHERE id = :id AND status IN ('dead', 'skipped', 'cancelled')
RETURNING event_id

-- The deliveries its death killed queue again (behind it: settle_queued makes them wait).
-- name: requeue_followers
UPDATE deliveries
SET status = 'pending', tries = 0, queued_at = :now, next_attempt_at = :now,
    blocked_by = NULL, last_error = NULL
WHERE blocked_by = :id AND status = 'dead'
RETURNING id, event_id

-- Routed events whose deliveries are all final (an unrouted event still has work to do).
-- name: purgeable
SELECT id FROM events AS ev
WHERE received_at < :before AND routed_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.event_id = ev.id AND d.status NOT IN {final})
ORDER BY id LIMIT :limit
{skip_locked}

-- name: purge_attempts
DELETE FROM attempts
WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id {in_list:ids})

-- name: purge_deliveries
DELETE FROM deliveries WHERE event_id {in_list:ids}

-- name: purge_events
DELETE FROM events WHERE id {in_list:ids}

-- name: purge_dedupe
DELETE FROM dedupe WHERE (source, key) IN
    (SELECT source, key FROM dedupe WHERE created_at < :before LIMIT :limit {skip_locked})

-- Of routed events only: one not routed yet still needs its body, and events_by_received_at
-- holds the routed ones.
-- name: drop_bodies
UPDATE events SET raw = NULL, raw_is_payload = false WHERE id IN
    (SELECT id FROM events
     WHERE received_at < :before AND routed_at IS NOT NULL
       AND (raw IS NOT NULL OR raw_is_payload)
     LIMIT :limit {skip_locked})

-- == counts ====================================================================================

-- A row per (provider, status), then one (provider NULL) with the events not routed yet and the
-- received_at of the oldest event with work left.
-- name: queue_stats
SELECT provider, status, count(*) AS n, CAST(NULL AS double precision) AS oldest
FROM deliveries GROUP BY provider, status
UNION ALL
SELECT NULL, NULL,
    (SELECT count(*) FROM events WHERE routed_at IS NULL),
    (SELECT min(t) FROM (
        SELECT min(received_at) AS t FROM events WHERE routed_at IS NULL
        UNION ALL
        SELECT min(event_received_at) FROM deliveries WHERE status IN {unfinished}) AS o)

-- Bucket numbers floor((t - since) / bucket). A delivery counts once, at the end of its last
-- successful attempt: a retry after a failure counts at the success.
-- The events received: the routed ones (events_by_received_at) and those not routed yet
-- (events_unrouted).
-- name: activity
SELECT 'received' AS kind, slot, count(*) AS n FROM (
    SELECT {floor:(received_at - :since) / :bucket} AS slot FROM events
    WHERE received_at >= :since AND received_at < :until AND routed_at IS NOT NULL
    UNION ALL
    SELECT {floor:(received_at - :since) / :bucket} FROM events
    WHERE received_at >= :since AND received_at < :until AND routed_at IS NULL) AS received
GROUP BY slot
UNION ALL
SELECT 'delivered', {floor:(a.started_at + a.duration - :since) / :bucket} AS slot, count(*)
FROM attempts AS a JOIN deliveries AS d ON d.id = a.delivery_id
WHERE a.outcome = 'success' AND d.status = 'done'
  AND a.started_at + a.duration >= :since AND a.started_at + a.duration < :until
  AND NOT EXISTS (SELECT 1 FROM attempts AS later
                  WHERE later.delivery_id = a.delivery_id AND later.outcome = 'success'
                    AND (later.number, later.id) > (a.number, a.id))
GROUP BY slot

-- == migrations (bridge.store.schema) ==========================================================

-- name: begin
BEGIN

-- name: begin (sqlite)
BEGIN IMMEDIATE

-- name: commit
COMMIT

-- name: rollback
ROLLBACK

-- name: create_schema_migrations
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    applied_at double precision NOT NULL
)

-- name: applied_versions
SELECT version FROM schema_migrations

-- name: record_migration
INSERT INTO schema_migrations (version, applied_at) VALUES (:version, :now)

-- Replicas starting at once take turns. pg_advisory_lock(int, int) is a key space apart from
-- the per-key locks (one bigint); SQLite's BEGIN IMMEDIATE is the lock there.
-- name: migration_lock

-- name: migration_lock (postgres)
SELECT pg_advisory_lock(1952609895, 1)

-- name: migration_unlock

-- name: migration_unlock (postgres)
SELECT pg_advisory_unlock(1952609895, 1)

-- name: repeatable_read
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY

-- == what autovacuum would do =================================================================

-- The tables among :tables that PostgreSQL's autovacuum would have tended by now and will not,
-- being off (on the server, or for the table), by its own rule and the server's settings:
-- `vacuum` when more rows died since the last VACUUM than autovacuum_vacuum_threshold and
-- _scale_factor allow (a queue's updates leave a dead row each, and their index entries,
-- which every walk of an index then steps over), `analyze` when more changed since the last
-- ANALYZE than autovacuum_analyze_threshold and _scale_factor allow. SQLite has neither.
-- name: untended_tables

-- name: untended_tables (postgres)
SELECT name, needs_vacuum, needs_analyze FROM (
    SELECT c.relname AS name,
        s.n_dead_tup > CAST(current_setting('autovacuum_vacuum_threshold') AS float8)
            + CAST(current_setting('autovacuum_vacuum_scale_factor') AS float8)
              * greatest(c.reltuples, 0) AS needs_vacuum,
        s.n_mod_since_analyze > CAST(current_setting('autovacuum_analyze_threshold') AS float8)
            + CAST(current_setting('autovacuum_analyze_scale_factor') AS float8)
              * greatest(c.reltuples, 0) AS needs_analyze
    FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid
    WHERE s.schemaname = current_schema() AND CAST(c.relname AS text) {in_list:tables}
      AND (current_setting('autovacuum') = 'off'
           OR 'autovacuum_enabled=false' = ANY(coalesce(c.reloptions, '{}')))) AS due
WHERE needs_vacuum OR needs_analyze
ORDER BY name
