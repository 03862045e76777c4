"""The `vambe` provider: tickets on a WhatsApp number through Vambe's public API.

    create_ticket  POST /api/public/ticket/open/{channel}/{phoneId}  -> {"aiContactId": ...}
    update_ticket  POST /api/public/ticket/metadata  (ai_contact_id if known, else contact_number)
    close_ticket   [metadata as above], POST /api/public/ticket/close/contact/{aiContactId}
    reopen_ticket  opens a new ticket for the contact (GET /api/public/contact/{id}/info first
                   when the action has no phone)

Vambe answers a create with the contact's id, not a ticket id: the correlate map keeps it as
TicketRef.contact_id, and every later action addresses "the contact's active ticket" with it.
Vambe has no notes and no tags; `check` refuses rules asking for them. Auth: `x-api-key`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx

from bridge.config import Config, ProviderConfig
from bridge.exceptions import Problem
from bridge.providers.base import (
    Capabilities,
    Job,
    Outcome,
    OutcomeKind,
    Provider,
    excerpt,
    exchange,
    ticket_not_found,
)
from bridge.providers.vambe.body import (
    UnsendableAction,
    allow_closed_ticket,
    create_body,
    metadata_body,
    phone_number,
    ticket_metadata,
)
from bridge.providers.vambe.dryrun import dry_run_answer
from bridge.providers.vambe.pipelines import Pipeline, parse_pipelines
from bridge.providers.vambe.settings import VambeSettings, check_rules, parse_settings
from bridge.rendering.templates import Templates
from bridge.tickets import ActionKind, Direction, TicketRef


class VambeProvider(Provider):
    capabilities = Capabilities(
        actions=frozenset(ActionKind) - {ActionKind.ADD_NOTE},
        fields=frozenset(
            {"contact", "subject", "message", "metadata", "contact_metadata", "options"}
        ),
        directions=frozenset({Direction.INCOMING, Direction.OUTGOING}),
    )

    def __init__(
        self,
        *,
        name: str,
        client: httpx.AsyncClient,
        settings: VambeSettings,
        secrets: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name=name, secrets=secrets)
        self._client = client
        self.settings = settings
        self._clock = clock

    def credentials(self) -> Iterable[str]:
        return (self.settings.api_key,)

    async def attempt(self, job: Job) -> Outcome:
        handlers = {
            ActionKind.CREATE_TICKET: self._create,
            ActionKind.UPDATE_TICKET: self._update,
            ActionKind.CLOSE_TICKET: self._close,
            ActionKind.REOPEN_TICKET: self._reopen,
        }
        handler = handlers.get(job.action.action)
        if handler is None:
            outcome = Outcome(
                kind=OutcomeKind.PERMANENT,
                message=f"vambe cannot {job.action.action.value} (no notes on Vambe)",
            )
        else:
            try:
                outcome = await handler(job)
            except UnsendableAction as exc:
                outcome = Outcome(kind=OutcomeKind.PERMANENT, message=f"vambe: {exc}")
        return outcome

    # -- the actions --------------------------------------------------------------------------

    async def _create(self, job: Job, phone: str | None = None) -> Outcome:
        phone = phone or phone_number(job.action)
        if phone is None:
            raise UnsendableAction("contact.phone is required to open a Vambe ticket")
        s = self.settings
        body = create_body(job.action, s, phone=phone)
        path = f"/api/public/ticket/open/{s.channel}/{quote(s.phone_id, safe='')}"
        answer = await self._send("POST", path, body)
        if isinstance(answer, Outcome):
            return answer
        contact_id = _contact_id(answer)
        ref = replace(job.ticket_ref or TicketRef(), contact_id=contact_id) if contact_id else None
        return Outcome(
            kind=OutcomeKind.SUCCESS,
            status_code=answer.status_code,
            response_excerpt=excerpt(answer.text),
            message="" if contact_id else "Vambe answered without an aiContactId",
            ticket_ref=ref or job.ticket_ref,
            ticket_open=True,
        )

    async def _update(self, job: Job) -> Outcome:
        contact_id = job.ticket_ref.contact_id if job.ticket_ref else None
        phone = phone_number(job.action)
        if contact_id is None and phone is None:
            missing = ticket_not_found(job, "no Vambe contact id for this correlate key, no phone")
            return missing if missing is not None else await self._create(job)
        target = {"ai_contact_id": contact_id} if contact_id else {"contact_number": phone or ""}
        failed = await self._annotate(job, target, contact_id)
        if failed is not None:
            return failed
        note = ""
        if job.action.contact_metadata and contact_id is None:
            note = "contact_metadata not updated: no Vambe contact id for this correlate key"
        elif not job.action.contact_metadata and not ticket_metadata(job.action, self.settings):
            note = "nothing to update on Vambe (no subject, message or metadata)"
        return Outcome(
            kind=OutcomeKind.SUCCESS, message=note, ticket_ref=job.ticket_ref, ticket_open=None
        )

    async def _close(self, job: Job) -> Outcome:
        contact_id = job.ticket_ref.contact_id if job.ticket_ref else None
        if contact_id is None:
            missing = ticket_not_found(
                job, "no Vambe contact id for this correlate key; Vambe closes by contact id"
            )
            return missing if missing is not None else await self._create(job)
        failed = await self._annotate(job, {"ai_contact_id": contact_id}, contact_id)
        if failed is not None:
            return failed
        answer = await self._send("POST", f"/api/public/ticket/close/contact/{_seg(contact_id)}")
        if isinstance(answer, Outcome):
            return await self._missing_on_404(job, answer)
        return Outcome(
            kind=OutcomeKind.SUCCESS,
            status_code=answer.status_code,
            response_excerpt=excerpt(answer.text),
            ticket_ref=job.ticket_ref,
            ticket_open=False,
        )

    async def _reopen(self, job: Job) -> Outcome:
        """Vambe has no reopen: a new ticket is opened for the same contact."""
        contact_id = job.ticket_ref.contact_id if job.ticket_ref else None
        if contact_id is None:
            missing = ticket_not_found(job, "no Vambe contact id for this correlate key")
            return missing if missing is not None else await self._create(job)
        phone = phone_number(job.action)
        if phone is None:
            answer = await self._send("GET", f"/api/public/contact/{_seg(contact_id)}/info")
            if isinstance(answer, Outcome):
                return await self._missing_on_404(job, answer)
            phone = _json_field(answer, "phone")
            if phone is None:
                raise UnsendableAction(
                    f"Vambe contact {contact_id} has no phone number; "
                    "set ticket.contact.phone on the reopen rule"
                )
        return await self._create(job, phone)

    async def _annotate(
        self, job: Job, target: dict[str, str], contact_id: str | None
    ) -> Outcome | None:
        """Merge the action's ticket metadata (and contact metadata, when the contact id is
        known) into the contact's active ticket: None when done, else the outcome to return."""
        metadata = ticket_metadata(job.action, self.settings)
        if metadata:
            allow = allow_closed_ticket(job.action, self.settings)
            body = metadata_body(target, metadata, allow_closed=allow)
            answer = await self._send("POST", "/api/public/ticket/metadata", body)
            if isinstance(answer, Outcome):
                return await self._missing_on_404(job, answer)
        if job.action.contact_metadata and contact_id is not None:
            path = f"/api/public/contact/{_seg(contact_id)}/update-metadata"
            answer = await self._send("POST", path, {"metadata": dict(job.action.contact_metadata)})
            if isinstance(answer, Outcome):
                return answer
        return None

    async def _missing_on_404(self, job: Job, outcome: Outcome) -> Outcome:
        """A 404 means Vambe has no (active) ticket or contact: on_missing decides."""
        if outcome.status_code != 404:
            return outcome
        missing = ticket_not_found(job, f"Vambe: {outcome.message}")
        return missing if missing is not None else await self._create(job)

    # -- HTTP ---------------------------------------------------------------------------------

    async def _send(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> httpx.Response | Outcome:
        request = self._client.build_request(
            method,
            self.settings.base_url + path,
            headers={"x-api-key": self.settings.api_key},
            json=body,
        )
        return await exchange(
            self._client, request, timeout=self.settings.timeout, now=self._clock()
        )

    async def pipelines(self) -> list[Pipeline] | Outcome:
        """GET /api/public/pipeline: the account's pipelines and their stages."""
        answer = await self._send("GET", "/api/public/pipeline")
        if isinstance(answer, Outcome):
            return answer.masked(self.secrets | {self.settings.api_key})
        try:
            pipelines = parse_pipelines(answer.json())
        except ValueError:
            pipelines = None
        if pipelines is None:
            return Outcome(
                kind=OutcomeKind.PERMANENT,
                status_code=answer.status_code,
                message="Vambe answered GET /api/public/pipeline with something other than a list",
            )
        return pipelines

    def dry_run_answer(
        self, request: httpx.Request, *, earlier: Sequence[httpx.Request] = ()
    ) -> httpx.Response:
        return dry_run_answer(request, earlier=earlier)


def _seg(value: str) -> str:
    return quote(value, safe="")


def _json_field(response: httpx.Response, key: str) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return str(value) if value not in (None, "") else None


def _contact_id(response: httpx.Response) -> str | None:
    """The aiContactId of a create answer (ai_contact_id / id read too, defensively)."""
    for key in ("aiContactId", "ai_contact_id", "id"):
        found = _json_field(response, key)
        if found:
            return found
    return None


def build(
    p: ProviderConfig,
    config: Config,
    templates: Templates,
    client: httpx.AsyncClient,
    problems: list[Problem],
) -> Provider:
    settings = parse_settings(p, config, problems)
    problems.extend(check_rules(p, settings, config))
    return VambeProvider(name=p.name, client=client, settings=settings, secrets=config.secrets)
