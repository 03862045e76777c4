"""Per-provider pacing: a token bucket (rate_limit), a circuit breaker, a concurrency cap.

Pure state over an injected clock. The bucket's arithmetic is here, its state in the store
(taken in the same transaction as the claims it pays for, so the rate is shared by every
worker process). The breaker and the concurrency cap live in one worker's memory; the
breaker's openings are also written to the store, so other processes and `show` see them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bridge.config import CircuitBreakerPolicy, ProviderConfig, RateLimit

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


@dataclass
class CircuitBreaker:
    """Closed: deliveries flow. After `failures` retryable failures in a row it opens for
    `cooldown` seconds (nothing is started); then it lets one delivery through (half open):
    its success closes the circuit, its failure opens it again."""

    policy: CircuitBreakerPolicy
    failures: int = 0
    open_until: float | None = None

    def room(self, now: float) -> int | None:
        """None: no limit from the breaker; else how many may be in flight (0 or 1)."""
        if self.open_until is None:
            return None
        return 0 if now < self.open_until else 1

    def succeeded(self) -> None:
        self.failures = 0
        self.open_until = None

    def failed(self, now: float) -> bool:
        """Count a retryable failure; True when this opens the circuit."""
        self.failures += 1
        if self.open_until is not None and now < self.open_until:
            return False  # already open: a straggler that was in flight when it opened
        half_open = self.open_until is not None
        if half_open or self.failures >= self.policy.failures:
            self.open_until = now + self.policy.cooldown
            return True
        return False


class Pace:
    """One provider's pacing in one worker: concurrency cap and circuit breaker."""

    def __init__(self, provider: ProviderConfig) -> None:
        self.concurrency = provider.concurrency
        self.rate_limit = provider.rate_limit
        self.breaker = CircuitBreaker(provider.circuit_breaker)
        self.in_flight = 0

    def reconfigure(self, provider: ProviderConfig) -> Pace:
        """This pace under a reloaded configuration: its deliveries in flight kept, and its
        circuit's state unless the breaker's policy changed."""
        self.concurrency = provider.concurrency
        self.rate_limit = provider.rate_limit
        if provider.circuit_breaker != self.breaker.policy:
            self.breaker = CircuitBreaker(provider.circuit_breaker)
        return self

    def room(self, now: float) -> int:
        """How many deliveries may start now (the rate limit aside: the store applies it)."""
        room = self.concurrency - self.in_flight
        probe = self.breaker.room(now)
        if probe is not None:
            room = min(room, probe - self.in_flight)
        return max(0, room)

    def free_at(self, now: float) -> float | None:
        """When room opens without a delivery finishing (the circuit's cooldown ending);
        None when only a finishing delivery can make room (or there is room now)."""
        if self.in_flight < self.concurrency and self.breaker.room(now) == 0:
            return self.breaker.open_until
        return None

    def started(self) -> None:
        self.in_flight += 1

    def finished(self) -> None:
        self.in_flight -= 1
