"""The token bucket's arithmetic: it holds its rate, never grants past its burst, and keeps
the time a late worker lost."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from bridge.config import RateLimit
from bridge.store.buckets import Bucket, next_token_at, refill, whole


@given(
    rate=st.floats(min_value=0.5, max_value=200),
    burst=st.integers(min_value=1, max_value=20),
    steps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200),
)
def test_a_bucket_never_grants_more_than_burst_plus_rate_times_elapsed(rate, burst, steps):
    limit = RateLimit(per_second=rate, burst=burst)
    bucket, now, granted = None, 0.0, 0
    for step in steps:
        now += step
        tokens = refill(bucket, limit, now=now)
        room = whole(tokens)
        bucket = Bucket(tokens=tokens - room, at=now)
        granted += room
        assert granted <= burst + rate * now + 1e-6


def test_a_starved_bucket_says_when_its_next_token_comes():
    limit = RateLimit(per_second=20, burst=1)
    assert refill(None, limit, now=0.0) == 1.0  # a provider never paced starts full
    spent = Bucket(tokens=0.0, at=0.0)
    assert whole(refill(spent, limit, now=0.01)) == 0
    assert math.isclose(next_token_at(refill(spent, limit, now=0.01), limit, now=0.01), 0.05)
    assert whole(refill(spent, limit, now=0.05)) == 1
    assert whole(refill(spent, limit, now=100.0)) == 1  # never more than the burst


@given(
    rate=st.floats(min_value=0.5, max_value=200),
    waits=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200),
)
def test_with_burst_1_no_two_starts_are_closer_than_nine_tenths_of_an_interval(rate, waits):
    limit = RateLimit(per_second=rate, burst=1)
    bucket, now, starts = None, 0.0, []
    for wait in waits:
        now += wait / rate  # up to two intervals
        tokens = refill(bucket, limit, now=now)
        room = whole(tokens)
        assert room <= 1
        starts += [now] * room
        bucket = Bucket(tokens=tokens - room, at=now)
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    assert all(gap >= 0.9 / rate - 1e-9 for gap in gaps)


def granted_in_10_s(limit: RateLimit, *, late: float = 0.0) -> int:
    """Starts a worker gets that takes each token `late` seconds after it is due."""
    bucket, now, granted = None, 0.0, 0
    while now < 10.0:
        tokens = refill(bucket, limit, now=now)
        room = whole(tokens)
        granted += room
        bucket = Bucket(tokens=tokens - room, at=now)
        now = next_token_at(tokens - room, limit, now=now) + late
    return granted


def test_a_worker_that_takes_each_token_a_little_late_keeps_the_rate():
    limit = RateLimit(per_second=50, burst=1)  # a token every 20 ms
    # 500 in 10 s; without the credit, 466 (one in 21.5 ms)
    assert granted_in_10_s(limit, late=0.0015) >= 499


def test_a_busy_bucket_grants_its_rate_over_time():
    assert granted_in_10_s(RateLimit(per_second=20, burst=1)) in (200, 201)
