"""What a dry run's HTTP client sent and what it got back (`ticketbridge try`, `check`).

The Recorder's client is the one the provider adapters are built with, so a dry run sends
every request through the adapter's real code. Without `send` its transport answers from the
stub helpdesk of the provider being tried (Provider.dry_run_answer), which is shown the earlier
requests of the same delivery, so it can answer as a helpdesk that has never seen the customer
and keeps what this delivery created. With `send`, the requests go to the network.

Each request is shown with the answer it got, marked `stubbed` or not. Secrets stay masked:
credential headers show as [redacted] (is_secret_header, in requests and answers), and in an
answer the values under credential-like keys (`access_token`) and any echo of a credential
header's value are [redacted] too; configured secrets are masked by the caller on output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bridge.providers.base import Provider, excerpt
from bridge.redaction import credentials_in, mask, redact_headers, redact_json


@dataclass
class Recorder:
    """Collects every request a client sends and the answer it got, in order."""

    send: bool = False
    requests: list[httpx.Request] = field(default_factory=list)
    responses: dict[int, httpx.Response] = field(default_factory=dict)  # by id(request)
    provider: Provider | None = None
    first: int = 0  # where the current delivery's requests start

    def begin(self, provider: Provider) -> None:
        """The requests from now on are one delivery to `provider`."""
        self.provider, self.first = provider, len(self.requests)

    def client(self) -> httpx.AsyncClient:
        transport = None if self.send else httpx.MockTransport(self.answer)
        hooks: dict[str, list[Callable[..., Any]]] = {
            "request": [self._on_request],
            "response": [self._on_response],
        }
        return httpx.AsyncClient(transport=transport, event_hooks=hooks)

    def answer(self, request: httpx.Request) -> httpx.Response:
        """The stub transport: the provider's stubbed answer (no network)."""
        if self.provider is None:
            return httpx.Response(200, json={"id": "dry-run"})
        earlier = tuple(r for r in self.requests[self.first :] if r is not request)
        return self.provider.dry_run_answer(request, earlier=earlier)

    async def _on_request(self, request: httpx.Request) -> None:
        self.requests.append(request)

    async def _on_response(self, response: httpx.Response) -> None:
        await response.aread()  # cached: the adapter reads the same bytes
        self.responses[id(response.request)] = response

    def delivery(self, *, failure: str | None = None) -> list[dict[str, Any]]:
        """The current delivery's requests as JSON, each with its answer; `failure` (the
        outcome's message) explains a request that got no answer."""
        return [
            exchange_json(request, self.responses.get(id(request)), send=self.send, failure=failure)
            for request in self.requests[self.first :]
        ]


def _body(content: bytes) -> Any:
    if not content:
        return None
    try:
        return json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


def answer_json(
    request: httpx.Request, response: httpx.Response | None, *, send: bool, failure: str | None
) -> dict[str, Any]:
    if response is None:
        return {"error": failure or "no answer", "stubbed": not send}
    credentials = credentials_in(request.headers)
    body = _body(response.content)
    shown: dict[str, Any] = {"status": response.status_code}
    if isinstance(body, str):
        shown["text"] = mask(excerpt(body), credentials)
    else:
        shown["json"] = redact_json(body, credentials)
    shown["stubbed"] = not send
    return shown


def exchange_json(
    request: httpx.Request, response: httpx.Response | None, *, send: bool, failure: str | None
) -> dict[str, Any]:
    """One request as `try --json` shows it (DESIGN §4.2), with the answer it got."""
    return {
        "method": request.method,
        "url": str(request.url),
        "headers": redact_headers(request.headers.items()),
        "json": _body(request.content),
        "answer": answer_json(request, response, send=send, failure=failure),
    }
