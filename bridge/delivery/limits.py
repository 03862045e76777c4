"""Per-provider pacing in one worker: a circuit breaker and a concurrency cap.

Pure state over an injected clock, in one worker's memory; the breaker's openings are also
written to the store, so other processes and `show` see them. The token bucket (rate_limit) is
shared by every process: its arithmetic is bridge.store.buckets, its state a row of the store.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.config import CircuitBreakerPolicy, ProviderConfig


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
