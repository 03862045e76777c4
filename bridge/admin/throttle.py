"""Failed admin authentications, counted per client address.

After ALLOWED failures within WINDOW seconds, an address is refused (429 with Retry-After)
until the oldest of them is WINDOW old, whatever it sends, the right token included: guessing
the token goes no faster than ALLOWED a minute. Each failure is logged at warning, and so is
the moment an address is locked out; the refusals themselves are not (a flood of them would
flood the log). At most ADDRESSES addresses are remembered, the least recent forgotten first,
so that many addresses cannot fill the memory.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

log = logging.getLogger("bridge.admin")

ALLOWED = 10
WINDOW = 60.0
ADDRESSES = 10_000


class FailedLogins:
    def __init__(
        self,
        *,
        allowed: int = ALLOWED,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed = allowed
        self.window = window
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def wait(self, address: str) -> int | None:
        """Seconds `address` must wait before it may try again; None when it may now."""
        failures = self._recent(address)
        if failures is None or len(failures) < self.allowed:
            return None
        return max(1, math.ceil(failures[0] + self.window - self._clock()))

    def failed(self, address: str, *, path: str) -> None:
        failures = self._recent(address)
        if failures is None:
            failures = self._failures[address] = deque()
            while len(self._failures) > ADDRESSES:
                self._failures.popitem(last=False)
        failures.append(self._clock())
        self._failures.move_to_end(address)
        facts = {"action": "admin.auth_failed", "client": address, "path": path}
        log.warning("admin authentication failed", extra=facts)
        if len(failures) == self.allowed:
            log.warning(
                "admin authentication locked out",
                extra={**facts, "action": "admin.locked_out", "seconds": self.window},
            )

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        since = self._clock() - self.window
        while failures and failures[0] <= since:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures
