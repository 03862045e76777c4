"""Durations and sizes as people write them: `500ms`, `2s`, `5m`, `1h`, `2d`; `1MiB`, `10KB`.

Bare numbers are seconds and bytes. The JSON Schema (config/schema.json) carries the same two
patterns, so an editor flags a bad value before `ticketbridge check` does.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

DURATION_UNITS: dict[str, float] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
SIZE_UNITS: dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}

_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?) *(ms|s|m|h|d)?")
_SIZE = re.compile(r"([0-9]+) *((?:[kmg]i?)?b)?", re.IGNORECASE)


def parse_duration(value: object) -> float:
    """Seconds from a number (seconds) or a string: "30", "500ms", "2s", "5m", "1h", "2d"."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (use seconds or 500ms, 2s, 5m, 1h, 2d)")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{value!r} is not a duration: it must be a finite number >= 0")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.removesuffix("\n"))  # as the schema's `$` allows
        if match:
            number, unit = match.groups()
            if unit == "ms":
                return float(number) / 1000  # exact for whole milliseconds, unlike * 0.001
            return float(number) * DURATION_UNITS[unit or "s"]
    raise ValueError(f"{value!r} is not a duration (use seconds or 500ms, 2s, 5m, 1h, 2d)")


def parse_size(value: object) -> int:
    """Bytes from an int or a string: "100", "100B", "10KB" (10**4), "512KiB", "1MiB", "2MB"."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"{value!r} is not a size: it must be >= 0 bytes")
        return value
    if isinstance(value, str):
        match = _SIZE.fullmatch(value.removesuffix("\n"))
        if match:
            number, unit = match.groups()
            return int(number) * SIZE_UNITS[(unit or "b").lower()]
    raise ValueError(
        f"{value!r} is not a size (use bytes or a unit: 100B, 10KB, 512KiB, 1MiB, 2MB, 1GiB)"
    )


def format_duration(seconds: float) -> str:
    """The shortest exact spelling: 0.5 -> "500ms", 300 -> "5m", 90 -> "90s"."""
    seconds = parse_duration(seconds)
    if seconds == 0:
        return "0s"
    for unit in ("d", "h", "m", "s", "ms"):
        count = seconds / DURATION_UNITS[unit]
        if count == int(count) and (count >= 1 or unit == "ms"):
            spelled = f"{int(count)}{unit}"
            if parse_duration(spelled) == seconds:
                return spelled
    return format(Decimal(repr(seconds)), "f")  # plain digits: the pattern has no exponent


def format_size(size: int) -> str:
    """The shortest exact spelling, binary units first: 1048576 -> "1MiB", 2000 -> "2KB"."""
    size = parse_size(size)
    for unit in ("GiB", "GB", "MiB", "MB", "KiB", "KB"):
        factor = SIZE_UNITS[unit.lower()]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"
