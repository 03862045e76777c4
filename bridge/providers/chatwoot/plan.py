"""What the cloudchat / chatwoot adapter writes to a conversation, and how: the payload pieces
a ticket action becomes (custom attributes, labels, message, assignments) and the sequence of
calls that applies an action to a conversation that already exists.

Custom attributes and labels are replaced whole by the API, so they are read, merged and
written (labels always; attributes unless the server merges them itself, `merge: true`).
Every call but the message is idempotent, so the message goes last: a retry after a failed
call repeats only writes that change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.providers.base import Job, Outcome, OutcomeKind
from bridge.providers.chatwoot.api import ChatwootApi, Conversation
from bridge.providers.chatwoot.settings import OPTIONS, AttributeMerge, ChatwootSettings
from bridge.tickets import ActionKind, Direction, TicketAction, TicketRef

OPEN_STATUSES = frozenset({"open", "pending", "snoozed"})


def number(value: Any) -> Any:
    """Ids as the API's integers where they look like one."""
    return int(value) if isinstance(value, str) and value.isdigit() else value


def is_note(action: TicketAction) -> bool:
    """add_note, or a message with direction note: a private message."""
    if action.action is ActionKind.ADD_NOTE:
        return True
    return action.message is not None and action.message.direction is Direction.NOTE


def is_incoming(action: TicketAction) -> bool:
    message = action.message
    return message is not None and message.direction is Direction.INCOMING and not is_note(action)


def message_body(action: TicketAction) -> dict[str, Any]:
    """POST /conversations/{id}/messages: a note is a private outgoing message."""
    if action.message is None:
        raise ValueError("the action has no message")
    text = action.message.text
    if is_note(action):
        return {"content": text, "message_type": "outgoing", "private": True}
    return {"content": text, "message_type": action.message.direction.value}


def options(action: TicketAction) -> dict[str, Any]:
    return {key: number(action.options[key]) for key in OPTIONS if key in action.options}


class ConversationWriter:
    def __init__(self, *, api: ChatwootApi, settings: ChatwootSettings) -> None:
        self.api = api
        self.settings = settings

    def attributes(self, action: TicketAction) -> dict[str, Any]:
        """subject and metadata as conversation custom_attributes."""
        attributes = dict(action.metadata)
        if action.subject is not None:
            attributes[self.settings.subject_attribute] = action.subject
        return attributes

    def ref(self, job: Job, cid: str, contact_id: str | None) -> TicketRef:
        """The complete reference to store: the conversation's display id (as ticket and
        conversation id), its contact, and where an agent opens it."""
        old = job.ticket_ref
        if contact_id is None and old is not None and (old.conversation_id or old.ticket_id) == cid:
            contact_id = old.contact_id
        return TicketRef(
            ticket_id=cid,
            conversation_id=cid,
            contact_id=contact_id,
            url=self.api.conversation_url(cid),
        )

    async def labels(
        self, cid: str, current: tuple[str, ...], tags: tuple[str, ...]
    ) -> Outcome | None:
        """The union of the labels there and the tags (nothing sent when nothing is new)."""
        union = list(dict.fromkeys([*current, *tags]))
        if not tags or union == list(current):
            return None
        return await self.api.set_labels(cid, union)

    async def custom_attributes(
        self, conversation: Conversation, attributes: Mapping[str, Any]
    ) -> Outcome | None:
        if not attributes:
            return None
        if self.settings.custom_attributes_merge is AttributeMerge.SERVER:
            return await self.api.set_custom_attributes(conversation.id, attributes, merge=True)
        merged = {**conversation.custom_attributes, **attributes}
        if merged == dict(conversation.custom_attributes):
            return None
        return await self.api.set_custom_attributes(conversation.id, merged, merge=False)

    async def apply(self, job: Job, conversation: Conversation, *, fresh: bool) -> Outcome:
        """Apply a non-create action (or a create that found its conversation open) to an
        existing conversation. `fresh`: its attributes and labels were just read."""
        action = job.action
        kind = action.action
        cid = conversation.id
        if kind is ActionKind.REOPEN_TICKET:
            failed = await self.api.toggle_status(cid, "open")
            if failed is not None:
                return failed
        attributes = self.attributes(action)
        merge_here = self.settings.custom_attributes_merge is AttributeMerge.CLIENT
        contact_id = conversation.contact.id if conversation.contact else None
        wanted = (attributes and merge_here) or action.tags or action.contact_metadata
        if not fresh and wanted:
            read = await self.api.conversation(cid)
            if isinstance(read, Outcome):
                return read
            conversation = read
            contact_id = contact_id or (read.contact.id if read.contact else None)
        failed = await self.custom_attributes(conversation, attributes)
        failed = failed or await self.labels(cid, conversation.labels, action.tags)
        if failed is None and action.contact_metadata:
            if contact_id is None:
                lack = f"conversation {cid} has no contact to write contact_metadata to"
                return Outcome(kind=OutcomeKind.PERMANENT, message=lack)
            body = {"custom_attributes": dict(action.contact_metadata)}
            failed = await self.api.update_contact(contact_id, body)
        for key, value in options(action).items():
            failed = failed or await self.api.assign(cid, {key: value})
        failed = failed or await self._message_and_status(action, cid)
        if failed is not None:
            return failed
        ref = self.ref(job, cid, contact_id)
        return Outcome(
            kind=OutcomeKind.SUCCESS, ticket_ref=ref, ticket_open=self._open(job, conversation)
        )

    async def _message_and_status(self, action: TicketAction, cid: str) -> Outcome | None:
        """The message last, except that an incoming message would reopen a conversation
        just resolved: then it goes before the close."""
        closing = action.action is ActionKind.CLOSE_TICKET
        if closing and is_incoming(action):
            failed = await self.api.post_message(cid, message_body(action))
            return failed or await self.api.toggle_status(cid, "resolved")
        if closing:
            failed = await self.api.toggle_status(cid, "resolved")
            if failed is not None:
                return failed
        if action.message is not None:
            return await self.api.post_message(cid, message_body(action))
        return None

    def _open(self, job: Job, conversation: Conversation) -> bool:
        kind = job.action.action
        if kind is ActionKind.CLOSE_TICKET:
            return False
        if kind is ActionKind.REOPEN_TICKET or is_incoming(job.action):
            return True  # an incoming message reopens a resolved conversation too
        if conversation.status is not None:
            return conversation.status in OPEN_STATUSES
        return job.ticket_open if job.ticket_open is not None else True
