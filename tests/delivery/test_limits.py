"""Per-provider pacing in a worker: the breaker opens and probes, the room is the tighter cap."""

from __future__ import annotations

from bridge.config import CircuitBreakerPolicy, ProviderConfig
from bridge.config.model import Location
from bridge.delivery.limits import CircuitBreaker, Pace


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
