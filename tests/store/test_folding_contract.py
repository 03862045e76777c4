"""The Store contract for storm folding: a burst on one key becomes its first delivery and
one note, held until the window closes; a full note goes at once and closes the window."""

from __future__ import annotations

import dataclasses
from typing import Any

from bridge.config.model import Fold
from bridge.records import DeliveryStatus, EventStatus
from bridge.store.base import Store
from bridge.tickets import ActionKind, TicketAction

from .conftest import T0, Run, make_delivery, result_for
from .test_contract import ingest_one, route

PENDING, WAITING, SKIPPED = DeliveryStatus.PENDING, DeliveryStatus.WAITING, DeliveryStatus.SKIPPED


def burst(run: Run[Any], store: Store, count: int, fold: Fold, *, start: float = 0) -> list[Any]:
    """`count` events on one key, a second apart, each routed as it arrives; their deliveries."""
    found = []
    for i in range(count):
        at = T0 + start + i
        event_id = ingest_one(run, store, received_at=at)
        new = dataclasses.replace(
            make_delivery(event_id, correlate="order-1"),
            action=TicketAction(
                action=ActionKind.CREATE_TICKET,
                provider="vambe",
                subject=f"Order 1, try {i}",
                correlate="order-1",
            ),
            fold=fold,
        )
        route(run, store, event_id, [new], now=at)
        (stored,) = run(store.get_event(event_id)).deliveries
        found.append(stored)
    return found


def test_a_burst_is_its_first_delivery_and_one_note_held_until_the_window_closes(
    run: Run[Any], store: Store
) -> None:
    first, note, *rest = burst(run, store, 5, Fold(window=30, max=50))

    assert (first.status, first.folded, first.folded_into) == (PENDING, (), None)
    assert note.status is WAITING  # behind the first, on its key
    assert [d.status for d in rest] == [SKIPPED] * 3
    assert {d.folded_into for d in rest} == {note.id}
    assert all(note.id in (d.last_error or "") for d in rest)
    assert [run(store.get_event(d.event_id)).event.status for d in rest] == [EventStatus.DONE] * 3
    stored_note = run(store.get_delivery(note.id))
    assert list(stored_note.folded) == [note.event_id, *(d.event_id for d in rest)]
    assert stored_note.action is not None and stored_note.action.message is not None
    assert stored_note.action.action is ActionKind.ADD_NOTE
    text = stored_note.action.message.text
    assert text.startswith("4 more events for this ticket, folded into one note, from ")
    assert "subject: 'Order 1, try 0' -> 'Order 1, try 1'" in text
    assert "subject: 'Order 1, try 3' -> 'Order 1, try 4'" in text

    [claim] = run(store.claim_due(now=T0 + 10, limit=10, lease=30))
    assert claim.delivery.id == first.id
    run(store.finish_attempt(claim, result_for(claim, DeliveryStatus.DONE), now=T0 + 11))
    # released behind the first, but not before the window closes (the first's arrival + 30 s)
    assert run(store.claim_due(now=T0 + 29, limit=10, lease=30)) == []
    assert run(store.next_wakeup(now=T0 + 29)) == T0 + 30
    [later] = run(store.claim_due(now=T0 + 30, limit=10, lease=30))
    assert later.delivery.id == note.id


def test_a_full_note_goes_at_once_and_the_next_event_opens_a_window(
    run: Run[Any], store: Store
) -> None:
    first, note, joined, after = burst(run, store, 4, Fold(window=30, max=2))

    assert joined.folded_into == note.id
    stored_note = run(store.get_delivery(note.id))
    assert len(stored_note.folded) == 2 and stored_note.next_attempt_at == T0 + 2
    assert (after.status, after.folded_into, after.action and after.action.action) == (
        WAITING,
        None,
        ActionKind.CREATE_TICKET,
    )  # a delivery of its own: it opened a new window


def test_an_event_after_the_window_is_a_delivery_of_its_own(run: Run[Any], store: Store) -> None:
    (first,) = burst(run, store, 1, Fold(window=5, max=50))
    (late,) = burst(run, store, 1, Fold(window=5, max=50), start=5)
    assert late.folded == () and late.action is not None
    assert late.action.action is ActionKind.CREATE_TICKET
    assert late.status is WAITING and late.blocked_by == first.id


def test_a_note_already_sent_is_not_joined(run: Run[Any], store: Store) -> None:
    first, note = burst(run, store, 2, Fold(window=60, max=50))
    for _ in range(2):
        [claim] = run(store.claim_due(now=T0 + 60, limit=10, lease=30))
        run(store.finish_attempt(claim, result_for(claim, DeliveryStatus.DONE), now=T0 + 60))
    (again,) = burst(run, store, 1, Fold(window=60, max=50), start=3)  # still in the window
    assert again.folded == (again.event_id,) and again.folded_into is None
    assert again.next_attempt_at == T0 + 60
