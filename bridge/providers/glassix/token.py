"""Glassix access tokens: fetched from /token/get, cached, renewed before they expire.

The token endpoint is throttled (Glassix's docs), so one provider instance keeps one token per
(workspace, api_key, user_name), renews it a safety margin before `expires_in` runs out (the
official C# SDK renews 5 minutes early), and lets concurrent deliveries share one fetch: they
wait on a lock while the first one asks.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bridge.providers.base import Outcome

TokenKey = tuple[str, str, str]  # (workspace, api_key, user_name)
DEFAULT_LIFETIME = 3 * 3600.0  # documented lifetime, used when an answer has no expires_in
RENEW_MARGIN = 300.0  # seconds before expiry at which a cached token is renewed


@dataclass(frozen=True, kw_only=True)
class Token:
    value: str
    expires_at: float
    fresh: bool = False  # fetched by the call that got it, not taken from the cache


@dataclass(frozen=True, kw_only=True)
class Granted:
    """What the token endpoint answered: the token and its lifetime in seconds."""

    value: str
    expires_in: float


Fetch = Callable[[], Awaitable[Granted | Outcome]]


class TokenCache:
    def __init__(self, *, clock: Callable[[], float], margin: float = RENEW_MARGIN) -> None:
        self._clock = clock
        self._margin = margin
        self._tokens: dict[TokenKey, Token] = {}
        self._issued: deque[str] = deque(maxlen=8)
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    def _guard(self) -> asyncio.Lock:
        # one lock per event loop: `ticketbridge check` runs each sample in its own loop
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    def cached(self, key: TokenKey) -> Token | None:
        token = self._tokens.get(key)
        if token is None or self._clock() >= token.expires_at:
            return None
        return token

    async def get(self, key: TokenKey, fetch: Fetch) -> Token | Outcome:
        """The cached token for `key`, or a new one from `fetch` (an Outcome if that failed)."""
        token = self.cached(key)
        if token is not None:
            return token
        async with self._guard():
            token = self.cached(key)  # fetched by another delivery while this one waited
            if token is not None:
                return token
            granted = await fetch()
            if isinstance(granted, Outcome):
                return granted
            now = self._clock()
            margin = min(self._margin, granted.expires_in / 2)
            token = Token(value=granted.value, expires_at=now + granted.expires_in - margin)
            self._tokens[key] = token
            self._issued.append(token.value)
            return Token(value=token.value, expires_at=token.expires_at, fresh=True)

    def invalidate(self, key: TokenKey, value: str) -> None:
        """Forget `value` (refused with a 401), unless another delivery already renewed it."""
        token = self._tokens.get(key)
        if token is not None and token.value == value:
            del self._tokens[key]

    def issued(self) -> list[str]:
        """The tokens handed out lately (to keep them out of messages)."""
        return list(self._issued)
