"""When a provider's deliveries go to its fallback instead (`fallback`, `fallback_after`).

Pure decisions; the store moves them (queues.move_deliveries): each is cancelled naming the
delivery that replaces it at the fallback, which carries the same action with a note saying
why, and the correlate map remembers where the key's ticket went, so later actions follow.
A delivery moves once: one sent to a fallback stays there.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.config import Config, ProviderConfig
from bridge.config.units import format_duration
from bridge.records import AttemptResult, Claim, DeliveryStatus, FallBack, ProviderHold
from bridge.times import iso


def fallback_for(
    claim: Claim, result: AttemptResult, config: Config, now: float
) -> FallBack | None:
    """An attempt's delivery goes to the fallback when it is dead, or when it would be retried
    after failing for fallback_after since it was queued."""
    delivery = claim.delivery
    provider = config.providers.get(delivery.provider)
    to = _fallback_of(provider, config.providers)
    if provider is None or to is None or delivery.moved_from is not None:
        return None
    error = result.last_error or "no reason recorded"
    if result.status is DeliveryStatus.DEAD:
        why = f"{delivery.provider} did not take it: {error}"
    elif (
        result.status is DeliveryStatus.PENDING
        and delivery.tries >= 1
        and now - delivery.queued_at >= provider.fallback_after
    ):
        failing = format_duration(round(now - delivery.queued_at))
        why = f"{delivery.provider} has failed for {failing}: {error}"
    else:
        return None
    return FallBack(to=to, why=why)


def held_fallback(
    hold: ProviderHold, providers: Mapping[str, ProviderConfig], now: float
) -> FallBack | None:
    """A provider paused, or with its circuit open, for fallback_after: its queue moves."""
    provider = providers.get(hold.provider)
    to = _fallback_of(provider, providers)
    if provider is None or to is None or hold.until <= now:
        return None
    if now - hold.since < provider.fallback_after:
        return None
    state = hold.state.value.replace("_", " ")
    why = f"{hold.provider} has been {state} since {iso(hold.since)}: {hold.reason}"
    return FallBack(to=to, why=why)


def _fallback_of(
    provider: ProviderConfig | None, providers: Mapping[str, ProviderConfig]
) -> str | None:
    """The provider's fallback while it is configured (a reload may have removed it)."""
    fallback = provider.fallback if provider else None
    return fallback if fallback in providers else None
