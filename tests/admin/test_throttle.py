"""Failed admin authentications per address: the lock-out, its end, and bounded memory."""

from __future__ import annotations

from bridge.admin import throttle
from bridge.admin.throttle import FailedLogins


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_until_its_oldest_failure_is_a_window_old():
    clock = Clock()
    attempts = FailedLogins(allowed=3, window=60.0, clock=clock)
    for _ in range(2):
        attempts.failed("10.0.0.1", path="/admin/login")
        clock.now += 10
    assert attempts.wait("10.0.0.1") is None
    attempts.failed("10.0.0.1", path="/admin/login")  # the third, at 1020
    assert attempts.wait("10.0.0.1") == 40  # the first (1000) is a window old at 1060
    assert attempts.wait("10.0.0.2") is None
    clock.now = 1060.5
    assert attempts.wait("10.0.0.1") is None


def test_a_success_forgets_the_failures():
    attempts = FailedLogins(allowed=2, clock=Clock())
    attempts.failed("a", path="/")
    attempts.succeeded("a")
    attempts.failed("a", path="/")
    assert attempts.wait("a") is None


def test_only_so_many_addresses_are_remembered(monkeypatch):
    monkeypatch.setattr(throttle, "ADDRESSES", 3)
    attempts = FailedLogins(allowed=1, clock=Clock())
    for address in "abcd":
        attempts.failed(address, path="/")
    assert attempts.wait("a") is None  # the least recent, forgotten
    assert all(attempts.wait(address) for address in "bcd")
