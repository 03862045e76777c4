"""Forgetting what is old: events whose work is over, with their deliveries and attempts,
dedupe keys past their window, raw bodies past defaults.keep_bodies. Steps of one chunk
each (SQLStore runs them chunk by chunk, each in its own transaction, so that ingests
interleave with a big purge).
"""

from __future__ import annotations

from bridge.store.steps import Step, execute, rows


def purge_some(
    *, before: float | None, dedupe_before: float | None, limit: int
) -> Step[tuple[int, int]]:
    """Purge up to `limit` events and `limit` dedupe keys; return how many of each."""
    ids: list[str] = []
    if before is not None:
        ids = [row["id"] for row in (yield from rows("purgeable", before=before, limit=limit))]
    if ids:
        yield from execute("purge_attempts", ids=ids)
        yield from execute("purge_deliveries", ids=ids)
        yield from execute("purge_events", ids=ids)
    keys = 0
    if dedupe_before is not None:
        keys = yield from execute("purge_dedupe", before=dedupe_before, limit=limit)
    return len(ids), keys


def drop_some_bodies(*, before: float, limit: int) -> Step[int]:
    return (yield from execute("drop_bodies", before=before, limit=limit))
