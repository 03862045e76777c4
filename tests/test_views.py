"""What `show` says about where a delivery stands and why."""

from __future__ import annotations

import hypothesis
import pytest
from hypothesis import strategies as st

from bridge.records import UNTIL_RESUMED, Delivery, DeliveryStatus, HoldState, ProviderHold
from bridge.views import why

NOW = 1_700_000_000.0


def delivery(status: DeliveryStatus, **fields) -> Delivery:
    base = dict(
        id="dlv_2",
        event_id="evt_2",
        rule="update",
        provider="desk",
        action={},
        correlate="order-7",
        status=status,
        attempts=0,
        tries=0,
        created_at=NOW,
        queued_at=NOW,
        next_attempt_at=NOW,
        last_error=None,
        ticket_ref=None,
    )
    return Delivery(**{**base, **fields})


def hold(state: HoldState, until: float = NOW + 600) -> ProviderHold:
    return ProviderHold(provider="desk", state=state, since=NOW, until=until, reason="HTTP 401")


@pytest.mark.parametrize(
    ("item", "held", "expected"),
    [
        (
            delivery(DeliveryStatus.WAITING, blocked_by="dlv_1"),
            None,
            "waiting for dlv_1, an earlier action for the same ticket (correlate 'order-7')",
        ),
        (
            delivery(DeliveryStatus.PENDING, attempts=1, last_error="HTTP 401"),
            hold(HoldState.PAUSED),
            "provider desk is paused since 2023-11-14T22:13:20.000Z: HTTP 401; it resumes at "
            "2023-11-14T22:23:20.000Z, or now with `ticketbridge resume desk`",
        ),
        (
            delivery(DeliveryStatus.PENDING),
            hold(HoldState.CIRCUIT_OPEN),
            "provider desk's circuit is open until 2023-11-14T22:23:20.000Z",
        ),
        (
            delivery(DeliveryStatus.PENDING, attempts=2, last_error="HTTP 503: down"),
            hold(HoldState.PAUSED, until=NOW - 1),  # a pause that is over says nothing
            "retrying: attempt 2 failed (HTTP 503: down); next attempt at 2023-11-14T22:13:20.000Z",
        ),
        (delivery(DeliveryStatus.PENDING), None, "queued for its first attempt"),
        (
            delivery(DeliveryStatus.DEAD, last_error="not sent: dlv_1 (rule create) ... is dead"),
            None,
            "dead: not sent: dlv_1",
        ),
    ],
)
def test_why_names_the_reason(item, held, expected):
    assert expected in why(item, held, now=NOW)


@hypothesis.given(now=st.floats(min_value=0, max_value=4e9))
def test_a_pause_until_resumed_reads_so_at_any_moment(now):
    """`now + UNTIL_RESUMED - now` does not always round back to UNTIL_RESUMED."""
    forever = ProviderHold(
        provider="desk",
        state=HoldState.PAUSED,
        since=now,
        until=now + UNTIL_RESUMED,
        reason="paused from the admin API",
    )
    timed = ProviderHold(
        provider="desk", state=HoldState.PAUSED, since=now, until=now + 600, reason="paused"
    )
    assert forever.until_resumed and not timed.until_resumed
