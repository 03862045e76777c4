"""Provider pacing in SQLite: holds (paused, circuit open) and the shared token buckets.

Plain functions of a connection, like sqlite_deliveries, which takes a bucket's tokens in the
transaction that claims what they pay for.
"""

from __future__ import annotations

import dataclasses
import sqlite3

from bridge.config import RateLimit
from bridge.limits import Bucket, next_token_at, refill
from bridge.store.base import ProviderHold
from bridge.store.sqlite_rows import hold_from_row

# -- token buckets -----------------------------------------------------------------------

_BUCKET = "SELECT tokens, at FROM rate_buckets WHERE provider = ?"
SAVE_BUCKET = """
INSERT INTO rate_buckets (provider, tokens, at) VALUES (?, ?, ?)
ON CONFLICT (provider) DO UPDATE SET tokens = excluded.tokens, at = excluded.at
"""


def bucket(connection: sqlite3.Connection, provider: str) -> Bucket | None:
    row = connection.execute(_BUCKET, (provider,)).fetchone()
    return None if row is None else Bucket(tokens=row["tokens"], at=row["at"])


def next_token(
    connection: sqlite3.Connection, *, provider: str, rate: RateLimit, now: float
) -> float:
    return next_token_at(refill(bucket(connection, provider), rate, now=now), rate, now=now)


# -- holds -------------------------------------------------------------------------------

_UPSERT_HOLD = """
INSERT INTO provider_holds (provider, state, since, until, reason)
VALUES (:provider, :state, :since, :until, :reason)
ON CONFLICT (provider) DO UPDATE
SET state = excluded.state, since = excluded.since, until = excluded.until,
    reason = excluded.reason
"""


def hold_provider(connection: sqlite3.Connection, hold: ProviderHold) -> None:
    connection.execute(_UPSERT_HOLD, {**dataclasses.asdict(hold), "state": hold.state.value})


def release_provider(connection: sqlite3.Connection, provider: str) -> bool:
    deleted = connection.execute("DELETE FROM provider_holds WHERE provider = ?", (provider,))
    return deleted.rowcount > 0


def provider_holds(connection: sqlite3.Connection) -> dict[str, ProviderHold]:
    rows = connection.execute("SELECT * FROM provider_holds ORDER BY provider")
    return {row["provider"]: hold_from_row(row) for row in rows}
