"""One attempt without I/O: the job prepared for the adapter, and what each outcome means."""

from __future__ import annotations

import asyncio
import json
import os
import random
from dataclasses import replace
from typing import Any

import pytest

from bridge.config import load_config
from bridge.delivery.attempts import decide, interrupted, prepare
from bridge.providers.base import Job, Outcome, OutcomeKind, Provider
from bridge.records import Claim, Delivery, DeliveryStatus, EventStatus, HoldState, StoredEvent
from bridge.tickets import ActionKind, OnExisting, OnMissing, TicketAction, TicketRef
from tests.helpers import write_tree

NOW = 1_700_000_000.0

CONFIG = """
    providers:
      desk:
        type: http
        url: "https://desk.example.com/tickets"
        headers: {Authorization: "Bearer ${DESK_TOKEN}"}
        retry: {max_attempts: 3, base: 1s, cap: 1s, retry_after_cap: 1m, auth_pause: 10m}
    sources:
      shop: {verify: {type: none}}
    rules:
      - name: order
        source: shop
        action: create_ticket
        provider: desk
        ticket: {subject: "Order {{ body.id }}", correlate: "order-{{ body.id }}"}
"""


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("DESK_TOKEN", "desk-secret-4411")
    root = write_tree(tmp_path, {"rules/main.yaml": CONFIG})
    (root / "templates").mkdir()
    return load_config(root / "rules", root / "templates", os.environ)


def claim(
    *,
    action="create_ticket",
    on_existing="update",
    tries=0,
    ticket_open=None,
    provider="desk",
) -> Claim:
    event = StoredEvent(
        id="evt_1",
        source="shop",
        received_at=NOW,
        headers={},
        query={},
        payload=json.dumps({"id": 7}),
        content_type="application/json",
        dedupe_key=None,
        status=EventStatus.ACCEPTED,
    )
    delivery = Delivery(
        id="dlv_1",
        event_id="evt_1",
        rule="order",
        provider=provider,
        action=TicketAction(
            action=ActionKind(action), provider=provider, on_existing=OnExisting(on_existing)
        ),
        correlate="order-7",
        status=DeliveryStatus.IN_FLIGHT,
        attempts=tries,
        tries=tries,
        created_at=NOW,
        queued_at=NOW,
        next_attempt_at=NOW,
        last_error=None,
        ticket_ref=None,
    )
    ref = {"ticket_id": "T-1"} if ticket_open is not None else None
    return Claim(
        delivery=delivery,
        received_at=event.received_at,
        event=event,
        lease_token="t",
        ticket_ref=ref,
        ticket_open=ticket_open,
    )


def test_a_create_for_an_open_ticket_becomes_an_update_that_may_still_create(config):
    job = prepare(claim(ticket_open=True), config=config, now=NOW)
    assert isinstance(job, Job)
    assert job.action.action is ActionKind.UPDATE_TICKET
    # if the helpdesk closed or lost the ticket meanwhile, the adapter creates one after all
    assert job.action.on_missing is OnMissing.CREATE
    assert job.ticket_ref is not None and job.ticket_ref.ticket_id == "T-1"


@pytest.mark.parametrize(
    ("on_existing", "ticket_open", "expected"),
    [
        ("skip", True, OutcomeKind.SKIPPED),
        ("create", True, ActionKind.CREATE_TICKET),
        ("update", False, ActionKind.CREATE_TICKET),  # the known ticket is closed: a new one
        ("skip", None, ActionKind.CREATE_TICKET),  # no ticket known for the key
    ],
)
def test_on_existing(config, on_existing, ticket_open, expected):
    job = prepare(claim(on_existing=on_existing, ticket_open=ticket_open), config=config, now=NOW)
    if isinstance(job, Outcome):
        assert job.kind is expected
    else:
        assert job.action.action is expected


def test_a_provider_no_longer_configured_is_a_permanent_failure(config):
    outcome = prepare(claim(provider="gone"), config=config, now=NOW)
    assert isinstance(outcome, Outcome) and outcome.kind is OutcomeKind.PERMANENT
    assert "'gone' is not configured" in outcome.message


class Answers(Provider):
    """A provider that answers every attempt with one outcome."""

    def __init__(self, outcome: Outcome, **options: Any) -> None:
        super().__init__(name="desk", **options)
        self.outcome = outcome

    async def attempt(self, job: Job) -> Outcome:
        return self.outcome


def test_unauthorized_pauses_the_provider_and_spends_no_try(config):
    said = Outcome(
        kind=OutcomeKind.UNAUTHORIZED, status_code=401, message="HTTP 401: desk-secret-4411 bad"
    )
    job = prepare(claim(tries=2), config=config, now=NOW)
    assert isinstance(job, Job)
    # the provider masks what it was told (Provider.deliver), the configured secrets included
    outcome = asyncio.run(Answers(said, secrets=config.secrets).deliver(job))
    result = decide(
        claim(tries=2), outcome, config=config, started=NOW, now=NOW + 1, rng=random.Random(1)
    )
    hold = result.hold
    assert result.status is DeliveryStatus.PENDING and result.spends_try is False
    assert result.next_attempt_at == NOW + 1
    assert hold is not None and hold.state is HoldState.PAUSED
    assert (hold.provider, hold.since, hold.until) == ("desk", NOW + 1, NOW + 1 + 600)
    assert "desk-secret-4411" not in hold.reason + (result.last_error or "")
    assert "dlv_1" in hold.reason


def test_retry_after_replaces_the_backoff_capped(config):
    outcome = Outcome(kind=OutcomeKind.RETRYABLE, status_code=429, retry_after=3600)
    result = decide(claim(), outcome, config=config, started=NOW, now=NOW, rng=random.Random(1))
    assert result.next_attempt_at == NOW + 60  # retry_after_cap: 1m
    assert result.hold is None


def test_the_last_try_goes_dead_naming_the_count(config):
    outcome = Outcome(kind=OutcomeKind.RETRYABLE, status_code=503, message="HTTP 503: down")
    result = decide(
        claim(tries=2), outcome, config=config, started=NOW, now=NOW, rng=random.Random(1)
    )
    assert result.status is DeliveryStatus.DEAD
    assert result.last_error == "gave up after 3 tries: HTTP 503: down"


def test_an_interrupted_attempt_is_logged_and_released_at_once():
    result = interrupted(claim(tries=1), started=NOW, now=NOW + 2)
    assert result.status is DeliveryStatus.PENDING and result.spends_try is False
    assert result.next_attempt_at == NOW + 2
    assert (result.attempt.outcome, result.attempt.number, result.attempt.duration) == (
        "interrupted",
        2,
        2,
    )


def test_success_keeps_the_ticket_reference(config):
    outcome = Outcome(
        kind=OutcomeKind.SUCCESS,
        status_code=201,
        ticket_ref=TicketRef(ticket_id="T-9"),
        ticket_open=True,
    )
    result = decide(claim(), outcome, config=config, started=NOW, now=NOW, rng=random.Random())
    assert result.status is DeliveryStatus.DONE
    assert result.ticket_ref == {"ticket_id": "T-9"} and result.ticket_open is True


def test_the_payload_is_parsed_again_only_for_a_provider_that_renders_templates(config):
    event = claim().event
    assert event is not None
    unreadable = replace(claim(), event=replace(event, payload="not json"))
    job = prepare(unreadable, config=config, now=NOW)  # a helpdesk adapter's job
    assert isinstance(job, Job) and job.context == {} and job.event_id == "evt_1"
    with pytest.raises(ValueError):
        prepare(unreadable, config=config, now=NOW, with_context=True)
    job = prepare(claim(), config=config, now=NOW, with_context=True)
    assert isinstance(job, Job) and job.context["body"] == {"id": 7}
    assert job.context["rule"] == {"name": "order"}


def test_a_claim_without_its_event_is_tried_again_where_the_event_is_needed(config):
    # its provider came to render its request by a reload after the claim (claim_due loads
    # the event only for such providers)
    bare = replace(claim(), event=None)
    job = prepare(bare, config=config, now=NOW)
    assert isinstance(job, Job) and job.event_id == "evt_1"
    outcome = prepare(bare, config=config, now=NOW, with_context=True)
    assert isinstance(outcome, Outcome) and outcome.kind is OutcomeKind.RETRYABLE
