"""Time-ordered, URL-safe ids: a prefix, 10 chars of milliseconds, 16 chars of randomness
(Crockford base32, like ULID), so ids sort by creation time and page cleanly.

The randomness makes ids unique, not secret (nothing is granted by knowing one): it comes
from a generator of this module's own, seeded from the OS and again in a forked child (and
untouched by anyone seeding the global `random`), not from `secrets`, whose system call per
id was 6% of the receiver's loop."""

from __future__ import annotations

import os
import random
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits as two characters


def _b32(value: int, width: int) -> str:
    """`value` as `width` (even) characters, most significant first."""
    return "".join(_PAIRS[(value >> shift) & 1023] for shift in range(width * 5 - 10, -1, -10))


def new_id(prefix: str, *, now: float | None = None) -> str:
    millis = int((time.time() if now is None else now) * 1000)
    return f"{prefix}_{_b32(millis, 10)}{_b32(_random.getrandbits(80), 16)}"
