"""The Chatwoot Application API as the cloudchat / chatwoot adapter calls it.

One method per documented call (paths under `{base_url}/api/v1/accounts/{account_id}`), each
one request through `exchange`: it answers the parsed record, or the classified Outcome of a
failed call, which the adapter returns as it is. Answers are parsed into small frozen records
here, so the adapter never digs through JSON. What `ticketbridge try` has these calls answer
is in dryrun.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from bridge import phones
from bridge.providers.base import Outcome, OutcomeKind, exchange
from bridge.tickets import Contact

#: additional_attributes keys the bridge writes on the conversations it creates
CORRELATE_KEY = "ticketbridge_correlate"
DELIVERY_KEY = "ticketbridge_delivery"


def phone_number(value: str) -> str:
    """`+56 9 6123-4567` -> `+56961234567` (Chatwoot stores and validates E.164); a value
    bridge.phones does not take for a phone number goes as it is."""
    return phones.for_provider(value) or value


def contact_keys(contact: Contact) -> list[tuple[str, str]]:
    """The contact's findable values, most reliable first: identifier, email, phone."""
    keys = [("identifier", contact.identifier), ("email", contact.email)]
    keys.append(("phone_number", phone_number(contact.phone) if contact.phone else None))
    return [(key, value) for key, value in keys if value]


@dataclass(frozen=True, kw_only=True)
class ContactRecord:
    id: str
    name: str | None = None
    email: str | None = None
    phone_number: str | None = None
    identifier: str | None = None
    source_ids: Mapping[str, str] = field(default_factory=dict)  # inbox id -> source_id

    def has(self, key: str, value: str) -> bool:
        """Exact match: the search is fuzzy (`q` matches parts of names, e-mails, phones)."""
        mine = getattr(self, key)
        if not mine:
            return False
        if key == "email":
            return bool(mine.lower() == value.lower())
        if key == "phone_number":
            return bool(phone_number(mine) == phone_number(value))
        return bool(mine == value)


@dataclass(frozen=True, kw_only=True)
class Conversation:
    id: str  # the display id: the number in the dashboard and in every conversation path
    status: str | None = None
    inbox_id: str | None = None
    custom_attributes: Mapping[str, Any] = field(default_factory=dict)
    additional_attributes: Mapping[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ()
    contact: ContactRecord | None = None  # meta.sender


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def parse_contact(data: Any) -> ContactRecord | None:
    if not isinstance(data, Mapping) or data.get("id") is None:
        return None
    sources = {}
    for item in data.get("contact_inboxes") or ():
        if isinstance(item, Mapping) and isinstance(item.get("inbox"), Mapping):
            inbox_id, source_id = item["inbox"].get("id"), item.get("source_id")
            if inbox_id is not None and source_id:
                sources[str(inbox_id)] = str(source_id)
    return ContactRecord(
        id=str(data["id"]),
        name=_text(data.get("name")),
        email=_text(data.get("email")),
        phone_number=_text(data.get("phone_number")),
        identifier=_text(data.get("identifier")),
        source_ids=sources,
    )


def parse_conversation(data: Any) -> Conversation | None:
    if not isinstance(data, Mapping) or data.get("id") is None:
        return None
    meta = data.get("meta")
    sender = parse_contact(meta.get("sender")) if isinstance(meta, Mapping) else None
    custom, additional = data.get("custom_attributes"), data.get("additional_attributes")
    labels = data.get("labels")
    return Conversation(
        id=str(data["id"]),
        status=_text(data.get("status")),
        inbox_id=_text(data.get("inbox_id")),
        custom_attributes=dict(custom) if isinstance(custom, Mapping) else {},
        additional_attributes=dict(additional) if isinstance(additional, Mapping) else {},
        labels=tuple(str(x) for x in labels) if isinstance(labels, list) else (),
        contact=sender,
    )


def _payload(data: Any) -> Any:
    return data.get("payload") if isinstance(data, Mapping) else None


def _unexpected(request: str, what: str) -> Outcome:
    return Outcome(kind=OutcomeKind.PERMANENT, message=f"unexpected answer to {request}: {what}")


class ChatwootApi:
    """The calls, with the `api_access_token` header; the token goes nowhere else."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        base_url: str,
        account_id: str,
        token: str,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account_id = account_id
        self._client = client
        self._token = token
        self._timeout = timeout
        self._clock = clock

    def conversation_url(self, conversation_id: str) -> str:
        """Where an agent opens the conversation in the dashboard."""
        return f"{self.base_url}/app/accounts/{self.account_id}/conversations/{conversation_id}"

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """The parsed JSON answer of a 2xx (None when it is not JSON), else an Outcome."""
        request = self._client.build_request(
            method,
            f"{self.base_url}/api/v1/accounts/{self.account_id}{path}",
            headers={"api_access_token": self._token},
            json=body,
            params=params,
        )
        answer = await exchange(self._client, request, timeout=self._timeout, now=self._clock())
        if isinstance(answer, Outcome):
            return answer
        try:
            return answer.json()
        except ValueError:
            return None

    # -- contacts --------------------------------------------------------------------------

    async def find_contact(self, contact: Contact) -> ContactRecord | None | Outcome:
        """GET /contacts/search for the identifier, then the email, then the phone; the first
        contact whose field equals the value (the search itself is fuzzy)."""
        for key, value in contact_keys(contact):
            data = await self.send("GET", "/contacts/search", params={"q": value})
            if isinstance(data, Outcome):
                return data
            for item in _payload(data) or ():
                record = parse_contact(item)
                if record is not None and record.has(key, value):
                    return record
        return None

    async def create_contact(self, body: Mapping[str, Any]) -> tuple[str, str] | Outcome:
        """POST /contacts: (contact id, source_id of its contact-inbox)."""
        data = await self.send("POST", "/contacts", body=body)
        if isinstance(data, Outcome):
            return data
        payload = _payload(data)
        contact = payload.get("contact") if isinstance(payload, Mapping) else None
        inbox = payload.get("contact_inbox") if isinstance(payload, Mapping) else None
        if not isinstance(contact, Mapping) or contact.get("id") is None:
            return _unexpected("POST /contacts", "no payload.contact.id")
        if not isinstance(inbox, Mapping) or not inbox.get("source_id"):
            return _unexpected("POST /contacts", "no payload.contact_inbox.source_id")
        return str(contact["id"]), str(inbox["source_id"])

    async def add_contact_inbox(self, contact_id: str, inbox_id: int) -> str | Outcome:
        """POST /contacts/{id}/contact_inboxes: the new contact-inbox's source_id."""
        path = f"/contacts/{contact_id}/contact_inboxes"
        data = await self.send("POST", path, body={"inbox_id": inbox_id})
        if isinstance(data, Outcome):
            return data
        if not isinstance(data, Mapping) or not data.get("source_id"):
            return _unexpected(f"POST {path}", "no source_id")
        return str(data["source_id"])

    async def update_contact(self, contact_id: str, body: Mapping[str, Any]) -> Outcome | None:
        """PUT /contacts/{id} (the server merges custom_attributes into the stored ones)."""
        data = await self.send("PUT", f"/contacts/{contact_id}", body=body)
        return data if isinstance(data, Outcome) else None

    async def conversations_of(self, contact_id: str) -> list[Conversation] | Outcome:
        """GET /contacts/{id}/conversations."""
        data = await self.send("GET", f"/contacts/{contact_id}/conversations")
        if isinstance(data, Outcome):
            return data
        found = (parse_conversation(item) for item in _payload(data) or ())
        return [conversation for conversation in found if conversation is not None]

    # -- conversations ---------------------------------------------------------------------

    async def create_conversation(self, body: Mapping[str, Any]) -> Conversation | Outcome:
        data = await self.send("POST", "/conversations", body=body)
        if isinstance(data, Outcome):
            return data
        return parse_conversation(data) or _unexpected("POST /conversations", "no id")

    async def conversation(self, conversation_id: str) -> Conversation | Outcome:
        data = await self.send("GET", f"/conversations/{conversation_id}")
        if isinstance(data, Outcome):
            return data
        path = f"GET /conversations/{conversation_id}"
        return parse_conversation(data) or _unexpected(path, "no id")

    async def set_custom_attributes(
        self, conversation_id: str, attributes: Mapping[str, Any], *, merge: bool
    ) -> Outcome | None:
        """POST /conversations/{id}/custom_attributes: replaces the whole hash, unless
        `merge` (a newer server keeps the keys not sent)."""
        body: dict[str, Any] = {"custom_attributes": dict(attributes)}
        if merge:
            body["merge"] = True
        path = f"/conversations/{conversation_id}/custom_attributes"
        data = await self.send("POST", path, body=body)
        return data if isinstance(data, Outcome) else None

    async def set_labels(self, conversation_id: str, labels: list[str]) -> Outcome | None:
        """POST /conversations/{id}/labels: overwrites the conversation's labels."""
        path = f"/conversations/{conversation_id}/labels"
        data = await self.send("POST", path, body={"labels": labels})
        return data if isinstance(data, Outcome) else None

    async def post_message(self, conversation_id: str, body: Mapping[str, Any]) -> Outcome | None:
        data = await self.send("POST", f"/conversations/{conversation_id}/messages", body=body)
        return data if isinstance(data, Outcome) else None

    async def toggle_status(self, conversation_id: str, status: str) -> Outcome | None:
        path = f"/conversations/{conversation_id}/toggle_status"
        data = await self.send("POST", path, body={"status": status})
        return data if isinstance(data, Outcome) else None

    async def assign(self, conversation_id: str, body: Mapping[str, Any]) -> Outcome | None:
        path = f"/conversations/{conversation_id}/assignments"
        data = await self.send("POST", path, body=body)
        return data if isinstance(data, Outcome) else None
