"""Per-provider pacing: the token bucket holds its rate, the breaker opens and probes."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from bridge.config import CircuitBreakerPolicy, ProviderConfig, RateLimit
from bridge.config.model import Location
from bridge.delivery.limits import Bucket, CircuitBreaker, Pace, next_token_at, refill, whole


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


def test_pace_room_is_the_tighter_of_concurrency_and_breaker():
    pace = Pace(provider(concurrency=3))
    assert pace.room(0.0) == 3
    pace.started()
    pace.started()
    pace.started()
    assert pace.room(0.0) == 0 and pace.free_at(0.0) is None  # full: a finish makes room
    for _ in range(3):
        pace.finished()
    for now in (11.0, 12.0, 13.0, 14.0, 15.0):
        pace.breaker.failed(now)
    assert pace.room(16.0) == 0
    assert pace.free_at(16.0) == 45.0  # the breaker's cooldown
    assert pace.room(45.0) == 1  # one probe


def test_a_reloaded_pace_keeps_its_deliveries_in_flight_and_its_circuit_unless_changed():
    policy = CircuitBreakerPolicy(failures=1, cooldown=30.0)
    pace = Pace(provider(concurrency=2, circuit_breaker=policy))
    pace.started()
    pace.breaker.failed(0.0)  # one failure opens a 1-failure breaker
    assert pace.room(1.0) == 0
    same = pace.reconfigure(provider(concurrency=5, circuit_breaker=policy))
    assert same is pace and pace.in_flight == 1 and pace.concurrency == 5
    assert pace.room(1.0) == 0  # still open: the policy did not change
    pace.reconfigure(provider(concurrency=5, circuit_breaker=CircuitBreakerPolicy(failures=9)))
    assert pace.room(1.0) == 4  # a new policy starts closed; one of the five is in flight
