"""Per-provider pacing: the token bucket holds its rate, the breaker opens and probes."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from bridge.config import CircuitBreakerPolicy, ProviderConfig, RateLimit
from bridge.config.model import Location
from bridge.limits import CircuitBreaker, Pace, TokenBucket


@given(
    rate=st.floats(min_value=0.5, max_value=200),
    burst=st.integers(min_value=1, max_value=20),
    steps=st.lists(st.floats(min_value=0, max_value=2), min_size=1, max_size=200),
)
def test_a_bucket_never_grants_more_than_burst_plus_rate_times_elapsed(rate, burst, steps):
    bucket = TokenBucket(RateLimit(per_second=rate, burst=burst), now=0.0)
    now = granted = 0.0
    for step in steps:
        now += step
        room = bucket.available(now)
        bucket.take(room, now)
        granted += room
        assert granted <= burst + rate * now + 1e-6


def test_a_starved_bucket_says_when_its_next_token_comes():
    bucket = TokenBucket(RateLimit(per_second=20, burst=1), now=0.0)
    assert bucket.available(0.0) == 1
    bucket.take(1, 0.0)
    assert bucket.available(0.01) == 0
    assert math.isclose(bucket.next_token_at(0.01), 0.05)
    assert bucket.available(0.05) == 1


def test_a_busy_bucket_grants_its_rate_over_time():
    bucket = TokenBucket(RateLimit(per_second=20, burst=1), now=0.0)
    granted, now = 0, 0.0
    while now < 10.0:
        if bucket.available(now):
            bucket.take(1, now)
            granted += 1
        now = bucket.next_token_at(now)
    assert granted in (200, 201)


def test_the_breaker_opens_after_failures_in_a_row_then_lets_one_probe_through():
    breaker = CircuitBreaker(CircuitBreakerPolicy(failures=3, cooldown=30))
    assert breaker.room(0) is None
    assert not breaker.failed(1) and not breaker.failed(2)
    breaker.succeeded()  # a success in between resets the count
    assert not breaker.failed(3) and not breaker.failed(4)
    assert breaker.failed(5)
    assert breaker.room(10) == 0 and breaker.open_until == 35
    assert not breaker.failed(20)  # a straggler that was in flight does not extend it
    assert breaker.open_until == 35

    assert breaker.room(35) == 1  # half open: one probe
    assert breaker.failed(36)  # the probe failed: open again
    assert breaker.open_until == 66
    assert breaker.room(66) == 1
    breaker.succeeded()
    assert breaker.room(67) is None


def provider(**fields):
    location = Location(file="rules/x.yaml", line=1, path="providers.x")
    return ProviderConfig(name="x", type="http", settings={}, location=location, **fields)


def test_pace_room_is_the_tightest_of_concurrency_tokens_and_breaker():
    pace = Pace(provider(concurrency=3, rate_limit=RateLimit(per_second=1, burst=2)), now=0.0)
    assert pace.room(0.0) == 2  # the bucket's burst
    pace.started(0.0)
    pace.started(0.0)
    assert pace.room(0.0) == 0
    assert pace.free_at(0.0) == 1.0  # the next token
    assert pace.room(5.0) == 1  # two tokens back, one slot left of three
    pace.started(5.0)
    assert pace.room(10.0) == 0 and pace.free_at(10.0) is None  # full: a finish makes room
    for _ in range(3):
        pace.finished()
    for now in (11.0, 12.0, 13.0, 14.0, 15.0):
        pace.breaker.failed(now)
    assert pace.room(16.0) == 0
    assert pace.free_at(16.0) == 45.0  # the breaker's cooldown
    assert pace.room(45.0) == 1
