"""The `awalchat` provider: Awal Chat's developer API (WhatsApp conversations with tickets).

Awal Chat has one conversation per phone number and no call that creates one: a conversation
is found by phone (`GET /conversations?searchTerm=`) or comes into being when the first
outgoing message is sent to the number (`POST /w/message/text`). A ticket is opened and closed
on a conversation (`POST /wechat/chat/events/{id}`, route `openTicket` / `closeTicket`); a 409
on open means a ticket is already open and counts as success.

    create_ticket   the conversation (correlate map, else by phone): openTicket, then the
                    message; no conversation yet: the message first (it starts one), then
                    the conversation by phone, then openTicket
    update_ticket   the outgoing message, to the conversation's phone
    reopen_ticket   openTicket, then the message if any
    close_ticket    the message if any, then closeTicket

The correlate map keeps the conversation id (TicketRef.conversation_id) and the ticket id that
openTicket returned. Calls are in api.py, request signing in signing.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx

from bridge.config import Config, ProviderConfig
from bridge.exceptions import Problem
from bridge.providers.awalchat.api import (
    CLOSE,
    OPEN,
    AwalChatApi,
    Conversation,
    phone_digits,
)
from bridge.providers.awalchat.dryrun import dry_run_answer
from bridge.providers.awalchat.settings import REQUIRED, rule_problems, settings_problems
from bridge.providers.awalchat.signing import AwalSigner, SignPath
from bridge.providers.base import (
    Capabilities,
    Job,
    Outcome,
    OutcomeKind,
    Provider,
    ticket_not_found,
)
from bridge.rendering.templates import Templates
from bridge.tickets import ActionKind, Direction, TicketRef

DEFAULT_BASE_URL = "https://api.awalchat.com/api/developer"


class AwalChatProvider(Provider):
    capabilities = Capabilities(
        actions=frozenset(
            {
                ActionKind.CREATE_TICKET,
                ActionKind.UPDATE_TICKET,
                ActionKind.CLOSE_TICKET,
                ActionKind.REOPEN_TICKET,
            }
        ),
        fields=frozenset({"contact", "message"}),
        directions=frozenset({Direction.OUTGOING}),
    )

    def __init__(
        self, *, name: str, api: AwalChatApi, hmac_secret: str, secrets: Iterable[str] = ()
    ) -> None:
        super().__init__(name=name, secrets=secrets)
        self._api = api
        self._hmac_secret = hmac_secret

    def credentials(self) -> Iterable[str]:
        return (self._hmac_secret,)

    def dry_run_answer(
        self, request: httpx.Request, *, earlier: Sequence[httpx.Request] = ()
    ) -> httpx.Response:
        return dry_run_answer(request, earlier=earlier)

    async def attempt(self, job: Job) -> Outcome:
        kind = job.action.action
        if kind is ActionKind.CREATE_TICKET:
            return await self._create(job)
        if kind not in self.capabilities.actions:
            return Outcome(kind=OutcomeKind.PERMANENT, message=f"Awal Chat cannot {kind.value}")
        found = await self._find(job)
        if isinstance(found, Outcome):
            return found
        if found is None:
            phone = job.action.contact.phone
            looked = (
                f"no Awal Chat conversation with phone {phone}"
                if phone_digits(phone)
                else "nothing in the correlate map and no contact.phone"
            )
            missing = ticket_not_found(job, looked)
            return missing if missing is not None else await self._create(job)
        ticket_id: str | None = None
        if kind is ActionKind.REOPEN_TICKET:
            opened = await self._api.ticket(found, OPEN)
            if isinstance(opened, Outcome):
                return opened
            ticket_id = opened
        sent = await self._message(job, found)
        if sent is not None:
            return sent
        if kind is ActionKind.CLOSE_TICKET:
            closed = await self._api.ticket(found, CLOSE)
            if isinstance(closed, Outcome):
                return closed
            ticket_id = closed
        is_open = {ActionKind.CLOSE_TICKET: False, ActionKind.REOPEN_TICKET: True}.get(
            kind, job.ticket_open
        )
        return _done(job, found, ticket_id, is_open)

    async def _create(self, job: Job) -> Outcome:
        phone = phone_digits(job.action.contact.phone)
        if not phone:
            return Outcome(
                kind=OutcomeKind.PERMANENT,
                message="create_ticket needs contact.phone (Awal Chat conversations are by phone)",
            )
        known = job.ticket_ref.conversation_id if job.ticket_ref else None
        conversation = (
            Conversation(id=known, phone=phone) if known else await self._api.search(phone)
        )
        if isinstance(conversation, Outcome):
            return conversation
        started = False
        if conversation is None:
            # there is no create-conversation call: the first outgoing message starts one
            if not _text(job):
                return Outcome(
                    kind=OutcomeKind.PERMANENT,
                    message=f"no Awal Chat conversation with {phone} yet, and no outgoing "
                    "message to start one",
                )
            sent = await self._message(job, Conversation(id="", phone=phone))
            if sent is not None:
                return sent
            started = True
            conversation = await self._api.search(phone)
            if isinstance(conversation, Outcome):
                return conversation
            if conversation is None:
                return Outcome(
                    kind=OutcomeKind.PERMANENT,
                    message=f"sent the first message to {phone} but no conversation with that "
                    "phone appeared; the ticket was not opened",
                )
        opened = await self._api.ticket(conversation, OPEN)
        if isinstance(opened, Outcome):
            return opened
        sent = None if started else await self._message(job, conversation)
        return sent or _done(job, conversation, opened, True)

    async def _find(self, job: Job) -> Conversation | Outcome | None:
        """The job's conversation: from the correlate map, else searched by phone."""
        phone = phone_digits(job.action.contact.phone) or None
        if job.ticket_ref and job.ticket_ref.conversation_id:
            return Conversation(id=job.ticket_ref.conversation_id, phone=phone)
        return await self._api.search(phone) if phone else None

    async def _message(self, job: Job, conversation: Conversation) -> Outcome | None:
        """Send the job's outgoing message, if it has one; an Outcome only on failure."""
        text = _text(job)
        if not text:
            return None
        phone = await self._api.phone_of(conversation)
        if isinstance(phone, Outcome):
            return phone
        contact = job.action.contact
        return await self._api.send_text(
            phone=phone, text=text, name=contact.name, email=contact.email
        )


def _text(job: Job) -> str:
    message = job.action.message
    if message is None or message.direction is not Direction.OUTGOING:
        return ""
    return message.text if message.text.strip() else ""


def _done(
    job: Job, conversation: Conversation, ticket_id: str | None, is_open: bool | None
) -> Outcome:
    """Success, with the whole reference to keep: what was known, updated by this call."""
    old = job.ticket_ref or TicketRef()
    same = old.conversation_id == conversation.id
    ref = TicketRef(
        ticket_id=ticket_id or (old.ticket_id if same else None),
        contact_id=old.contact_id if same else None,
        conversation_id=conversation.id,
        url=old.url if same else None,
    )
    return Outcome(kind=OutcomeKind.SUCCESS, ticket_ref=ref, ticket_open=is_open)


def build(
    p: ProviderConfig,
    config: Config,
    templates: Templates,
    client: httpx.AsyncClient,
    problems: list[Problem],
    *,
    clock: Callable[[], float] = time.time,
) -> Provider:
    settings: Mapping[str, Any] = p.settings
    problems.extend(settings_problems(p, config))
    problems.extend(rule_problems(p, config))
    values = {key: str(settings.get(key, "") or "") for key in REQUIRED}
    sign_path = str(settings.get("sign_path", SignPath.RELATIVE.value))
    signer = AwalSigner(
        client=client,
        base_url=p.base_url or DEFAULT_BASE_URL,
        client_id=values["client_id"],
        domain=values["domain"],
        hmac_secret=values["hmac_secret"],
        sign_path=SignPath(sign_path) if sign_path in set(SignPath) else SignPath.RELATIVE,
        clock=clock,
    )
    api = AwalChatApi(
        client=client,
        signer=signer,
        phone_number_id=values["phone_number_id"],
        timeout=p.timeout,
        clock=clock,
    )
    return AwalChatProvider(
        name=p.name, api=api, hmac_secret=values["hmac_secret"], secrets=config.secrets
    )
