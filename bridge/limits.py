"""Per-provider pacing in the worker: a token bucket (rate_limit) and a circuit breaker.

Pure state machines over an injected clock: the worker asks how many deliveries a provider
may start now, and tells them what came of each attempt. Both live in one worker's memory;
the breaker's openings are also written to the store, so other processes and `show` see them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bridge.config import CircuitBreakerPolicy, ProviderConfig, RateLimit

_EPSILON = 1e-9  # a token short by a rounding error is a whole token


class TokenBucket:
    """`per_second` tokens a second, at most `burst` saved up; a start costs one token."""

    def __init__(self, limit: RateLimit, *, now: float) -> None:
        self.rate = limit.per_second
        self.burst = max(1, limit.burst)
        self._tokens = float(self.burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now

    def available(self, now: float) -> int:
        self._refill(now)
        return math.floor(self._tokens + _EPSILON)

    def take(self, count: int, now: float) -> None:
        self._refill(now)
        self._tokens -= count

    def next_token_at(self, now: float) -> float:
        """When one whole token will be there (now, if it is)."""
        self._refill(now)
        missing = 1.0 - self._tokens
        return now if missing <= _EPSILON else now + missing / self.rate


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
    """One provider's pacing in one worker: concurrency cap, token bucket, circuit breaker."""

    def __init__(self, provider: ProviderConfig, *, now: float) -> None:
        self.concurrency = provider.concurrency
        self.bucket = TokenBucket(provider.rate_limit, now=now) if provider.rate_limit else None
        self.breaker = CircuitBreaker(provider.circuit_breaker)
        self.in_flight = 0

    def room(self, now: float) -> int:
        """How many deliveries may start now."""
        room = self.concurrency - self.in_flight
        probe = self.breaker.room(now)
        if probe is not None:
            room = min(room, probe - self.in_flight)
        if self.bucket is not None:
            room = min(room, self.bucket.available(now))
        return max(0, room)

    def free_at(self, now: float) -> float | None:
        """When room opens without a delivery finishing: a token, the circuit's cooldown.
        None when only a finishing delivery can make room (or there is room now)."""
        if self.in_flight >= self.concurrency:
            return None
        if self.breaker.room(now) == 0 and self.breaker.open_until is not None:
            return self.breaker.open_until
        if self.bucket is not None and self.bucket.available(now) < 1:
            return self.bucket.next_token_at(now)
        return None

    def started(self, now: float) -> None:
        self.in_flight += 1
        if self.bucket is not None:
            self.bucket.take(1, now)

    def finished(self) -> None:
        self.in_flight -= 1
