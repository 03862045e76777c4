"""A provider's token bucket (rate_limit), as arithmetic: its state is a row the store keeps
per provider, taken in the transaction that claims what it pays for (bridge.store.pacing), so
that the rate holds across every worker process. Pure, over times given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bridge.config import RateLimit

_EPSILON = 1e-9  # a token short by a rounding error is a whole token
# A full bucket keeps accruing for a tenth of a token more: a worker that takes its token up
# to a tenth of an interval late (a sleep that overshot, a routing step before the claim)
# keeps the time it lost, so the rate holds (bench e2e rate limit: 50/s with burst 1 lost
# about 1 ms of each 20 ms interval, -5.7%). Never a whole token more than `burst`: no two
# starts closer than 0.9 of an interval.
LATENESS_CREDIT = 0.1


@dataclass(frozen=True)
class Bucket:
    """A token bucket's state: `tokens` as of `at` (the store keeps one per provider, so the
    rate holds across every worker process)."""

    tokens: float
    at: float


def refill(bucket: Bucket | None, limit: RateLimit, *, now: float) -> float:
    """The tokens there are at `now`: `per_second` a second since `at`, at most `burst`
    whole ones (and LATENESS_CREDIT); a provider never paced before starts with a full
    bucket."""
    if bucket is None:
        return float(limit.burst)
    gained = max(0.0, now - bucket.at) * limit.per_second
    return min(limit.burst + LATENESS_CREDIT, bucket.tokens + gained)


def whole(tokens: float) -> int:
    """How many starts `tokens` pay for."""
    return max(0, math.floor(tokens + _EPSILON))


def next_token_at(tokens: float, limit: RateLimit, *, now: float) -> float:
    """When one whole token will be there (now, if it is)."""
    missing = 1.0 - tokens
    return now if missing <= _EPSILON else now + missing / limit.per_second
