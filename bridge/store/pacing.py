"""Provider pacing, shared by every process on the database: holds (paused, circuit open) and
the token buckets of rate-limited providers, whose tokens claims.claim_due takes in the
transaction that claims what they pay for, with the bucket's row locked (on PostgreSQL), so
that two processes never spend one token.
"""

from __future__ import annotations

import dataclasses

from bridge.config import RateLimit
from bridge.exceptions import StoreError
from bridge.records import ProviderHold
from bridge.store.buckets import Bucket, next_token_at, refill
from bridge.store.rows import hold_from_row
from bridge.store.steps import Step, execute, first, rows


def hold_provider(hold: ProviderHold) -> Step[None]:
    yield from execute("upsert_hold", **{**dataclasses.asdict(hold), "state": hold.state.value})


def release_provider(provider: str) -> Step[bool]:
    released = (yield from execute("release_hold", provider=provider)) > 0
    if released:
        yield from execute("notify_work")
    return released


def provider_holds() -> Step[dict[str, ProviderHold]]:
    return {row["provider"]: hold_from_row(row) for row in (yield from rows("holds"))}


def locked_bucket(provider: str, rate: RateLimit, *, now: float) -> Step[Bucket]:
    """The provider's bucket, its row locked to the end of the transaction. A provider never
    paced before gets its row (a full bucket, as refill(None) has it) first: there is no row
    to lock until then."""
    row = yield from first("locked_bucket", provider=provider)
    if row is None:
        yield from execute("new_bucket", provider=provider, tokens=float(rate.burst), now=now)
        row = yield from first("locked_bucket", provider=provider)
        if row is None:
            raise StoreError(f"the rate bucket of {provider!r} vanished")
    return Bucket(tokens=row["tokens"], at=row["at"])


def save_bucket(provider: str, *, tokens: float, now: float) -> Step[None]:
    """Call with the bucket locked."""
    yield from execute("save_bucket", provider=provider, tokens=tokens, now=now)


def next_token(provider: str, rate: RateLimit, *, now: float) -> Step[float]:
    row = yield from first("bucket", provider=provider)
    bucket = None if row is None else Bucket(tokens=row["tokens"], at=row["at"])
    return next_token_at(refill(bucket, rate, now=now), rate, now=now)
