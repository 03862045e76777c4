"""Time-ordered, URL-safe ids: a prefix, 10 chars of milliseconds, 16 chars of randomness
(Crockford base32, like ULID), so ids sort by creation time and page cleanly."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def _b32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_id(prefix: str, *, now: float | None = None) -> str:
    millis = int((time.time() if now is None else now) * 1000)
    return f"{prefix}_{_b32(millis, 10)}{_b32(secrets.randbits(80), 16)}"
