"""Pacing on PostgreSQL: provider holds (paused, circuit open) and the token buckets of
rate-limited providers, both shared by every process on the database.

A bucket is read with its row locked (SELECT ... FOR UPDATE) by the claim that spends its
tokens, so that processes claiming for one provider take turns and never spend a token twice.
"""

from __future__ import annotations

import dataclasses

from bridge.config import RateLimit
from bridge.exceptions import StoreError
from bridge.limits import Bucket, next_token_at, refill
from bridge.store.base import ProviderHold
from bridge.store.postgres_connection import Connection
from bridge.store.postgres_rows import hold_from_row

# read from `deliveries AS d`, with %(now)s
NOT_HELD = "d.provider NOT IN (SELECT provider FROM provider_holds WHERE until > %(now)s)"

# -- holds -------------------------------------------------------------------------------

_UPSERT_HOLD = """
INSERT INTO provider_holds (provider, state, since, until, reason)
VALUES (%(provider)s, %(state)s, %(since)s, %(until)s, %(reason)s)
ON CONFLICT (provider) DO UPDATE
SET state = excluded.state, since = excluded.since, until = excluded.until,
    reason = excluded.reason
"""


async def hold_provider(connection: Connection, hold: ProviderHold) -> None:
    await connection.execute(_UPSERT_HOLD, {**dataclasses.asdict(hold), "state": hold.state.value})


async def release_provider(connection: Connection, provider: str) -> bool:
    deleted = await connection.execute(
        "DELETE FROM provider_holds WHERE provider = %s", (provider,)
    )
    return deleted.rowcount > 0


async def provider_holds(connection: Connection) -> dict[str, ProviderHold]:
    cursor = await connection.execute("SELECT * FROM provider_holds ORDER BY provider")
    return {row["provider"]: hold_from_row(row) for row in await cursor.fetchall()}


# -- rate buckets --------------------------------------------------------------------------

_BUCKET = "SELECT tokens, at FROM rate_buckets WHERE provider = %s FOR UPDATE"
_NEW_BUCKET = """
INSERT INTO rate_buckets (provider, tokens, at) VALUES (%s, %s, %s)
ON CONFLICT (provider) DO NOTHING
"""
_SAVE_BUCKET = "UPDATE rate_buckets SET tokens = %s, at = %s WHERE provider = %s"


async def locked_bucket(
    connection: Connection, provider: str, rate: RateLimit, *, now: float
) -> Bucket:
    """The provider's bucket, its row locked to the end of the transaction. A provider never
    paced before gets its row (a full bucket, as refill(None) has it) first: there is no row to
    lock until then."""
    row = await (await connection.execute(_BUCKET, (provider,))).fetchone()
    if row is None:
        await connection.execute(_NEW_BUCKET, (provider, float(rate.burst), now))
        row = await (await connection.execute(_BUCKET, (provider,))).fetchone()
        if row is None:
            raise StoreError(f"the rate bucket of {provider!r} vanished")
    return Bucket(tokens=row["tokens"], at=row["at"])


async def save_bucket(connection: Connection, provider: str, *, tokens: float, now: float) -> None:
    """Call with the bucket locked."""
    await connection.execute(_SAVE_BUCKET, (tokens, now, provider))


async def next_token(
    connection: Connection, *, provider: str, rate: RateLimit, now: float
) -> float:
    row = await (
        await connection.execute(
            "SELECT tokens, at FROM rate_buckets WHERE provider = %s", (provider,)
        )
    ).fetchone()
    bucket = None if row is None else Bucket(tokens=row["tokens"], at=row["at"])
    return next_token_at(refill(bucket, rate, now=now), rate, now=now)
