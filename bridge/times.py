"""Times as every output shows them (logs, the CLI, the admin, messages): ISO 8601 in UTC,
to the millisecond. Stored times are float epoch seconds (bridge.records)."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.records import ProviderHold


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hold_until(hold: ProviderHold) -> str | None:
    """When a hold ends; None for a pause that lasts until it is resumed."""
    return None if hold.until_resumed else iso(hold.until)
