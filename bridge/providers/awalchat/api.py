"""The Awal Chat developer-API calls the adapter makes, each one signed request classified by
`exchange`: a result, or the Outcome (retryable, permanent, unauthorized) that ends the attempt.

Every call carries `?phone_number_id=` (the sending WhatsApp number). Paths are relative to the
API root (`https://api.awalchat.com/api/developer`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from bridge import phones
from bridge.providers.awalchat.signing import AwalSigner
from bridge.providers.base import Outcome, OutcomeKind, excerpt, exchange

CONVERSATIONS = "/conversations"
SEND_TEXT = "/w/message/text"
TICKET_EVENTS = "/wechat/chat/events/"  # + conversation id; the path really says wechat
OPEN, CLOSE = "openTicket", "closeTicket"


def phone_digits(phone: str | None) -> str:
    """Awal Chat wants international numbers as digits only, without `+`."""
    return phones.digits(phone)


@dataclass(frozen=True, kw_only=True)
class Conversation:
    id: str
    phone: str | None  # digits; None until looked up


class AwalChatApi:
    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        signer: AwalSigner,
        phone_number_id: str,
        timeout: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._signer = signer
        self._params = {"phone_number_id": phone_number_id}
        self._timeout = timeout
        self._clock = clock

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> httpx.Response | Outcome:
        request = self._signer.request(
            method, path, params={**self._params, **(params or {})}, json_body=json_body
        )
        return await exchange(self._client, request, timeout=self._timeout, now=self._clock())

    async def search(self, phone: str) -> Conversation | Outcome | None:
        """The conversation whose phone is exactly `phone` (the search matches partially)."""
        answer = await self._call("GET", CONVERSATIONS, params={"searchTerm": phone})
        if isinstance(answer, Outcome):
            return answer
        items = _data(answer)
        if not isinstance(items, list):
            return _unexpected(answer, f"GET {CONVERSATIONS}", "a data list")
        for item in items:
            if (
                isinstance(item, dict)
                and item.get("id") is not None
                and phone_digits(str(item.get("phone", ""))) == phone
            ):
                return Conversation(id=str(item["id"]), phone=phone)
        return None

    async def phone_of(self, conversation: Conversation) -> str | Outcome:
        """The conversation's phone; asked of the API when only its id is known."""
        if conversation.phone:
            return conversation.phone
        path = f"{CONVERSATIONS}/{conversation.id}"
        answer = await self._call("GET", path)
        if isinstance(answer, Outcome):
            return answer
        data = _data(answer)
        phone = phone_digits(str(data.get("phone", ""))) if isinstance(data, dict) else ""
        return phone or _unexpected(answer, f"GET {path}", "phone in the conversation")

    async def send_text(
        self, *, phone: str, text: str, name: str | None, email: str | None
    ) -> Outcome | None:
        """An outgoing WhatsApp text; an Outcome only when it failed."""
        body: dict[str, Any] = {"phone": phone, "body": text}
        for key, value in (("name", name), ("email", email)):
            if value:
                body[key] = value  # Awal Chat uses them only when the contact is new
        answer = await self._call("POST", SEND_TEXT, json_body=body)
        return answer if isinstance(answer, Outcome) else None

    async def ticket(self, conversation: Conversation, route: str) -> str | None | Outcome:
        """openTicket / closeTicket on a conversation: the ticket id the API returned (None if
        it gave none). A 409 on openTicket means one is already open: a success."""
        answer = await self._call(
            "POST", f"{TICKET_EVENTS}{conversation.id}", json_body={"route": route}
        )
        if isinstance(answer, Outcome):
            return None if route == OPEN and answer.status_code == 409 else answer
        data = _data(answer)
        ticket_id = data.get("ticket_id") if isinstance(data, dict) else None
        return str(ticket_id) if ticket_id is not None else None


def _data(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("data") if isinstance(body, dict) else None


def _unexpected(response: httpx.Response, call: str, wanted: str) -> Outcome:
    return Outcome(
        kind=OutcomeKind.PERMANENT,
        status_code=response.status_code,
        message=f"unexpected answer to {call}: no {wanted}",
        response_excerpt=excerpt(response.text),
    )
