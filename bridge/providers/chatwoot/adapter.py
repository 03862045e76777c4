"""The `cloudchat` and `chatwoot` providers: a ticket is a Chatwoot conversation.

Both types share this adapter; they differ in how a conversation is created:
- cloudchat: `POST /conversations` with `inbox_id` and one of `contact_identifier`,
  `contact_email`, `contact_phone_number` (in that order of preference);
- chatwoot: the contact is searched (`/contacts/search`, exact match on the identifier, e-mail
  or phone) or created (`POST /contacts`), then `POST /conversations` with its `source_id`.

On a known conversation: subject and metadata -> custom_attributes (read, merge, write; or
`merge: true`), tags -> labels (union of what is there and the tags), contact_metadata ->
contact custom_attributes (chatwoot only), options -> assignments, message -> a message
(`note` and add_note: a private one), close / reopen -> toggle_status resolved / open.

Without a conversation id in the correlate map, an action looks the conversation up by its
contact: the contact's conversations in the configured inbox that are open (any status for a
reopen) and not claimed by another correlate key. Conversations the bridge creates carry the
correlate key and the delivery id in `additional_attributes`, so a create that is repeated
(a crash after the provider's answer, a failed follow-up call) finds what it made.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import httpx

from bridge.config import Config, ProviderConfig
from bridge.exceptions import Problem
from bridge.providers.base import (
    TICKET_FIELDS,
    Capabilities,
    Job,
    Outcome,
    OutcomeKind,
    Provider,
    ticket_not_found,
)
from bridge.providers.chatwoot.api import (
    CORRELATE_KEY,
    DELIVERY_KEY,
    ChatwootApi,
    ContactRecord,
    Conversation,
    contact_keys,
)
from bridge.providers.chatwoot.dryrun import dry_run_answer
from bridge.providers.chatwoot.plan import (
    OPEN_STATUSES,
    ConversationWriter,
    is_note,
    message_body,
    number,
    options,
)
from bridge.providers.chatwoot.settings import ChatwootSettings, Flavour, read_settings
from bridge.rendering.templates import Templates
from bridge.tickets import ActionKind, OnExisting, TicketAction


def _newest(conversation: Conversation) -> int:
    return int(conversation.id) if conversation.id.isdigit() else 0


class ChatwootProvider(Provider):
    def __init__(
        self,
        *,
        name: str,
        api: ChatwootApi,
        settings: ChatwootSettings,
        secrets: Iterable[str] = (),
    ) -> None:
        super().__init__(name=name, secrets=secrets)
        self.api = api
        self.settings = settings
        self.writer = ConversationWriter(api=api, settings=settings)
        if settings.flavour is Flavour.CLOUDCHAT:
            # Cloud Chat's create takes no contact attributes (DESIGN §2.6)
            self.capabilities = Capabilities(fields=TICKET_FIELDS - {"contact_metadata"})

    def dry_run_answer(
        self, request: httpx.Request, *, earlier: Sequence[httpx.Request] = ()
    ) -> httpx.Response:
        return dry_run_answer(request, earlier=earlier, inbox_id=self.settings.inbox_id)

    def credentials(self) -> Iterable[str]:
        return (self.settings.api_access_token,)

    async def attempt(self, job: Job) -> Outcome:
        if job.action.action is ActionKind.ADD_NOTE and job.action.message is None:
            return Outcome(
                kind=OutcomeKind.SKIPPED, message="add_note with no text: nothing to add"
            )
        if job.action.action is ActionKind.CREATE_TICKET:
            return await self._create(job)
        ref = job.ticket_ref
        known = ref and (ref.conversation_id or ref.ticket_id)
        if known:
            contact = ContactRecord(id=ref.contact_id) if ref and ref.contact_id else None
            return await self.writer.apply(
                job, Conversation(id=known, contact=contact), fresh=False
            )
        found = await self._lookup(job.action)
        if isinstance(found, Outcome):
            return found
        if found is None:
            outcome = ticket_not_found(job, self._looked(job.action))
            return outcome if outcome is not None else await self._create(job)
        return await self.writer.apply(job, found, fresh=True)

    # -- finding a conversation --------------------------------------------------------------

    def _looked(self, action: TicketAction) -> str:
        keys = contact_keys(action.contact)
        if not keys:
            return "none in the correlate map, and no contact identifier, email or phone"
        state = "" if action.action is ActionKind.REOPEN_TICKET else "open "
        inbox = self.settings.inbox_id
        return f"none in the correlate map, nor {state}in inbox {inbox} for the contact"

    def _mine(self, conversation: Conversation, action: TicketAction) -> bool:
        """In our inbox, and not claimed by another correlate key."""
        claimed = conversation.additional_attributes.get(CORRELATE_KEY)
        other = bool(claimed and action.correlate and claimed != action.correlate)
        return conversation.inbox_id == str(self.settings.inbox_id) and not other

    async def _lookup(self, action: TicketAction) -> Conversation | None | Outcome:
        """The contact's newest open conversation in the inbox (any status for a reopen),
        one claimed by the action's correlate key first."""
        if not contact_keys(action.contact):
            return None
        contact = await self.api.find_contact(action.contact)
        if contact is None or isinstance(contact, Outcome):
            return contact
        conversations = await self.api.conversations_of(contact.id)
        if isinstance(conversations, Outcome):
            return conversations
        reopen = action.action is ActionKind.REOPEN_TICKET
        candidates = [
            c
            for c in conversations
            if self._mine(c, action) and (reopen or c.status in OPEN_STATUSES)
        ]
        if not candidates:
            return None

        def rank(c: Conversation) -> tuple[bool, int]:
            claimed = c.additional_attributes.get(CORRELATE_KEY)
            return (bool(action.correlate) and claimed == action.correlate, _newest(c))

        best = max(candidates, key=rank)
        return best if best.contact else dataclasses.replace(best, contact=contact)

    # -- create ------------------------------------------------------------------------------

    async def _create(self, job: Job) -> Outcome:
        action = job.action
        guard = bool(
            self.settings.lookup_before_create
            and action.correlate
            and action.action is ActionKind.CREATE_TICKET
        )
        contact: ContactRecord | None = None
        if (guard or self.settings.flavour is Flavour.CHATWOOT) and contact_keys(action.contact):
            searched = await self.api.find_contact(action.contact)
            if isinstance(searched, Outcome):
                return searched
            contact = searched
        if guard and contact is not None:
            conversations = await self.api.conversations_of(contact.id)
            if isinstance(conversations, Outcome):
                return conversations
            ours = [
                c
                for c in conversations
                if c.status in OPEN_STATUSES
                and self._mine(c, action)
                and c.additional_attributes.get(CORRELATE_KEY) == action.correlate
            ]
            if ours:
                existing = max(ours, key=_newest)
                if existing.additional_attributes.get(DELIVERY_KEY) == job.delivery_id:
                    # this delivery made it on an earlier attempt: finish what it left
                    return await self._finish_create(job, existing, contact.id, guard=True)
                if action.on_existing is OnExisting.SKIP:
                    message = f"conversation {existing.id} is already open for this correlate key"
                    return Outcome(kind=OutcomeKind.SKIPPED, message=message)
                if action.on_existing is OnExisting.UPDATE:
                    return await self.writer.apply(job, existing, fresh=True)
        body = await self._create_body(job, contact)
        if isinstance(body, Outcome):
            return body
        created = await self.api.create_conversation(body)
        if isinstance(created, Outcome):
            return created
        contact_id = str(body["contact_id"]) if "contact_id" in body else None
        return await self._finish_create(job, created, contact_id, guard=guard)

    async def _create_body(
        self, job: Job, contact: ContactRecord | None
    ) -> dict[str, Any] | Outcome:
        action = job.action
        body: dict[str, Any] = {"inbox_id": self.settings.inbox_id}
        if self.settings.flavour is Flavour.CLOUDCHAT:
            keys = contact_keys(action.contact)
            if not keys:
                lack = "cloudchat needs the contact's identifier, email or phone to create"
                return Outcome(kind=OutcomeKind.PERMANENT, message=lack)
            key, value = keys[0]
            body[f"contact_{key}"] = value
        else:
            ids = await self._contact_inbox(action, contact)
            if isinstance(ids, Outcome):
                return ids
            body["source_id"], body["contact_id"] = ids[1], number(ids[0])
        if action.message is not None and not is_note(action):
            body["message"] = message_body(action)
        body["status"] = "resolved" if action.action is ActionKind.CLOSE_TICKET else "open"
        attributes = self.writer.attributes(action)
        if attributes:
            body["custom_attributes"] = attributes
        if action.correlate:
            body["additional_attributes"] = {
                CORRELATE_KEY: action.correlate,
                DELIVERY_KEY: job.delivery_id,
            }
        body.update(options(action))
        return body

    async def _contact_inbox(
        self, action: TicketAction, contact: ContactRecord | None
    ) -> tuple[str, str] | Outcome:
        """chatwoot: (contact id, source_id in our inbox), creating what is missing."""
        inbox = self.settings.inbox_id
        if contact is None:
            if action.contact.is_empty():
                message = "chatwoot needs a contact (name, email, phone or identifier) to create"
                return Outcome(kind=OutcomeKind.PERMANENT, message=message)
            fields = {
                "name": action.contact.name,
                "email": action.contact.email,
                "phone_number": dict(contact_keys(action.contact)).get("phone_number"),
                "identifier": action.contact.identifier,
            }
            body: dict[str, Any] = {"inbox_id": inbox}
            body.update({key: value for key, value in fields.items() if value})
            if action.contact_metadata:
                body["custom_attributes"] = dict(action.contact_metadata)
            return await self.api.create_contact(body)
        if action.contact_metadata:
            attributes = {"custom_attributes": dict(action.contact_metadata)}
            failed = await self.api.update_contact(contact.id, attributes)
            if failed is not None:
                return failed
        source_id = contact.source_ids.get(str(inbox))
        if source_id is None:
            added = await self.api.add_contact_inbox(contact.id, inbox)
            if isinstance(added, Outcome):
                return added
            source_id = added
        return contact.id, source_id

    async def _finish_create(
        self, job: Job, conversation: Conversation, contact_id: str | None, *, guard: bool
    ) -> Outcome:
        """The calls a create needs after the conversation exists: labels, the contact's
        name (cloudchat), a private note. When one fails, a repeat of the delivery finds the
        conversation (guard) and finishes; without the guard a repeat would create a second
        conversation, so the create counts as done and the failure is its message."""
        action = job.action
        cid = conversation.id
        failed = await self.writer.labels(cid, conversation.labels, action.tags)
        sender = conversation.contact
        if failed is None and sender is not None and self._names_contact(action, sender):
            failed = await self.api.update_contact(sender.id, {"name": action.contact.name})
        if failed is None and action.message is not None and is_note(action):
            failed = await self.api.post_message(cid, message_body(action))
        ref = self.writer.ref(job, cid, sender.id if sender else contact_id)
        is_open = action.action is not ActionKind.CLOSE_TICKET
        if failed is None:
            return Outcome(kind=OutcomeKind.SUCCESS, ticket_ref=ref, ticket_open=is_open)
        if guard:
            return failed
        message = f"conversation {cid} created, but a follow-up call failed: {failed.message}"
        return Outcome(
            kind=OutcomeKind.SUCCESS, message=message, ticket_ref=ref, ticket_open=is_open
        )

    def _names_contact(self, action: TicketAction, sender: ContactRecord) -> bool:
        """cloudchat's create takes no name: give it to a contact Cloud Chat left unnamed
        (no name, or its e-mail, phone or identifier as the name)."""
        name = action.contact.name
        if self.settings.flavour is not Flavour.CLOUDCHAT or not name or sender.name == name:
            return False
        email = sender.email or ""
        placeholders = {email, email.partition("@")[0], sender.phone_number, sender.identifier}
        return not sender.name or sender.name in placeholders


def build(
    p: ProviderConfig,
    config: Config,
    templates: Templates,
    client: httpx.AsyncClient,
    problems: list[Problem],
) -> Provider:
    settings = read_settings(p, config, problems)
    api = ChatwootApi(
        client=client,
        base_url=settings.base_url,
        account_id=settings.account_id,
        token=settings.api_access_token,
        timeout=p.timeout,
    )
    return ChatwootProvider(
        name=p.name,
        api=api,
        settings=settings,
        secrets=config.secrets,
    )
