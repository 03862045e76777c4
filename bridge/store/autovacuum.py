"""What autovacuum does, done where it is off: the planner's statistics kept fresh, and the
dead rows a queue leaves cleared.

PostgreSQL chooses its plans by statistics of the tables, which its autovacuum refreshes as
they change, and its VACUUM clears the row versions that updates leave behind, with their
index entries. With autovacuum off (on the server, or for a table), a queue that filled or
drained since the last ANALYZE is planned as the table it was (measured on a queue of
101,000 deliveries drained to 1,000 with no statistics: a claim intersected bitmaps of every
unfinished delivery and sorted them, 12.7 ms a claim, instead of walking deliveries_claim to
its LIMIT, 1.2 ms), and every walk of a queue's index steps over the entries of the rows it
already finished (bench backlog, 100,000 waiting). The worker then tends the tables itself,
by autovacuum's own rule and the server's settings (bench/README.md, "PostgreSQL's plans").
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.store.steps import Script, Step, rows

TABLES = ("events", "deliveries", "attempts", "tickets", "dedupe")


@dataclass(frozen=True)
class Tended:
    vacuumed: tuple[str, ...] = ()  # VACUUM (ANALYZE)
    analyzed: tuple[str, ...] = ()  # ANALYZE only

    def __bool__(self) -> bool:
        return bool(self.vacuumed or self.analyzed)


def tend() -> Step[Tended]:
    """VACUUM (ANALYZE) and ANALYZE what autovacuum would have by now, and will not. Runs
    outside a transaction (VACUUM cannot run in one)."""
    found = yield from rows("untended_tables", tables=list(TABLES))
    vacuumed = tuple(str(row["name"]) for row in found if row["needs_vacuum"])
    analyzed = tuple(
        str(row["name"]) for row in found if row["needs_analyze"] and not row["needs_vacuum"]
    )
    # SKIP_LOCKED: a table another worker is tending now is left to it, not waited for
    if vacuumed:
        yield Script(f"VACUUM (ANALYZE, SKIP_LOCKED) {', '.join(vacuumed)}")
    if analyzed:
        yield Script(f"ANALYZE (SKIP_LOCKED) {', '.join(analyzed)}")
    return Tended(vacuumed=vacuumed, analyzed=analyzed)
