"""When to try a delivery again (DESIGN §3.2): exponential backoff with full jitter."""

from __future__ import annotations

import random

from bridge.config import RetryPolicy


def backoff(tries: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full jitter: a uniform delay between 0 and base * factor^(tries - 1), capped."""
    ceiling = min(policy.cap, policy.base * policy.factor ** max(0, tries - 1))
    return rng.uniform(0, ceiling)


def next_attempt_at(
    *,
    tries: int,
    queued_at: float,
    now: float,
    policy: RetryPolicy,
    retry_after: float | None,
    rng: random.Random,
) -> float | None:
    """The time of the next try after `tries` failed ones, or None when the budget is spent
    (max_attempts tries, or the next try would fall past max_age since the delivery was queued).
    A Retry-After from the provider replaces the backoff, capped at retry_after_cap."""
    if tries >= policy.max_attempts:
        return None
    if retry_after is not None:
        delay = min(retry_after, policy.retry_after_cap)
    else:
        delay = backoff(tries, policy, rng)
    at = now + delay
    if at - queued_at > policy.max_age:
        return None
    return at
