"""The query planner's statistics, kept fresh where the database does not keep them.

PostgreSQL chooses its plans by statistics of the tables, which its autovacuum refreshes as
they change. With autovacuum off (on the server, or for a table), a queue that filled or
drained since the last ANALYZE is planned as the table it was: measured on a queue of 101,000
deliveries drained to 1,000 with no statistics, a claim intersected bitmaps of every unfinished
delivery and sorted them (12.7 ms a claim) instead of walking deliveries_claim to its LIMIT
(1.2 ms). The worker then refreshes them itself, by autovacuum's own rule (bench/README.md,
"What the worker's drain spends"). VACUUM stays the operator's: it cannot share a transaction.
"""

from __future__ import annotations

from bridge.store.steps import Script, Step, rows

TABLES = ("events", "deliveries", "attempts", "tickets", "dedupe")


def refresh() -> Step[list[str]]:
    """ANALYZE the tables whose statistics autovacuum would have refreshed by now and will
    not; the tables analyzed."""
    stale = [str(row["name"]) for row in (yield from rows("stale_statistics", tables=list(TABLES)))]
    if stale:
        yield Script(f"ANALYZE {', '.join(stale)}")
    return stale
