"""The `http` provider: any HTTP API, with a templated url, headers and JSON body.

url, headers and body are templates rendered with the event's context plus `ticket` (the
rendered provider-neutral action); without `body` the action itself is sent as JSON. Every
attempt of one delivery carries the same `Idempotency-Key: <delivery id>`.

Where the bridge connects is configuration, never payload: the url's scheme, host and port
must be written out before any template markup (`written_origin`, a `check` problem
otherwise), and a rendered url that goes anywhere else is refused, not sent.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from bridge.exceptions import RenderError
from bridge.providers.base import (
    Job,
    Outcome,
    OutcomeKind,
    Provider,
    classify_response,
    classify_transport_error,
)
from bridge.rendering.actions import CompiledTree
from bridge.tickets import TicketRef

Origin = tuple[str, str, int]  # scheme, host, port
_MARKUP = re.compile(r"\{\{|\{%|\{#")
_AUTHORITY = re.compile(r"(?i)https?://[^/?#{]+(?=[/?#])")
ORIGIN_PROBLEM = (
    "the url's scheme, host and port must be written out before any {{ }}: rendered from a "
    "template, a webhook's payload could choose where the bridge connects"
)


def written_origin(url: str) -> Origin | None:
    """The (scheme, host, port) that the text of `url` fixes before any template markup, or
    None when markup (or nothing) could decide them."""
    markup = _MARKUP.search(url)
    literal = url if markup is None else url[: markup.start()]
    found = _AUTHORITY.match(literal if markup is not None else literal + "/")
    if found is None:
        return None
    try:
        return origin(httpx.URL(found.group(0) + "/"))
    except (httpx.InvalidURL, ValueError):
        return None


def origin(url: httpx.URL) -> Origin:
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.host, port


class HttpProvider(Provider):
    renders_templates = True

    def __init__(
        self,
        *,
        name: str,
        client: httpx.AsyncClient,
        method: str,
        url: CompiledTree,
        allowed_origin: Origin | None,
        headers: CompiledTree | None,
        body: CompiledTree | None,
        timeout: float,
        secrets: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name=name, secrets=secrets)
        self._client = client
        self._method = method.upper()
        self._url = url
        self._origin = allowed_origin
        self._headers = headers
        self._body = body
        self._timeout = timeout
        self._clock = clock

    def build_request(self, job: Job) -> httpx.Request:
        """The request this job sends; RenderError if a template fails."""
        ticket = job.action.to_json()
        context = {**job.context, "ticket": ticket}
        url = str(self._url.render(context))
        headers: dict[str, str] = {"Idempotency-Key": job.delivery_id}
        if self._headers is not None:
            rendered = self._headers.render(context)
            headers.update({str(k): str(v) for k, v in dict(rendered).items()})
        body: Any = ticket if self._body is None else self._body.render(context)
        if isinstance(body, str):
            # a whole-body template ({template: x.json.j2}) renders JSON text
            try:
                body = json.loads(body)
            except ValueError as exc:
                raise RenderError(
                    template=f"provider {self.name} body", line=None, message=f"not JSON: {exc}"
                ) from None
        return self._client.build_request(self._method, url, headers=headers, json=body)

    async def attempt(self, job: Job) -> Outcome:
        try:
            request = self.build_request(job)
        except RenderError as exc:
            return Outcome(kind=OutcomeKind.PERMANENT, message=str(exc))
        except httpx.InvalidURL as exc:
            return Outcome(kind=OutcomeKind.PERMANENT, message=f"invalid url: {exc}")
        goes_to = origin(request.url)
        if goes_to != self._origin:  # None only in a configuration `check` refused
            went = "{}://{}:{}".format(*goes_to)
            return Outcome(
                kind=OutcomeKind.PERMANENT,
                message=f"refused: the rendered url goes to {went}, not where configured",
            )
        request.extensions["timeout"] = httpx.Timeout(self._timeout).as_dict()
        try:
            response = await self._client.send(request)
        except httpx.HTTPError as exc:
            return classify_transport_error(exc)
        outcome = classify_response(response, now=self._clock())
        if outcome.kind is not OutcomeKind.SUCCESS:
            return outcome
        return Outcome(
            kind=outcome.kind,
            status_code=outcome.status_code,
            response_excerpt=outcome.response_excerpt,
            ticket_ref=_ticket_ref(response) or job.ticket_ref,
            ticket_open=job.action.action.value != "close_ticket",
        )


def _ticket_ref(response: httpx.Response) -> TicketRef | None:
    """The id of what the API created, where APIs usually put it: `id` or `ticket.id`."""
    try:
        data = response.json()
    except ValueError:
        return None
    if isinstance(data, dict):
        for candidate in (data, data.get("ticket"), data.get("data")):
            if isinstance(candidate, dict) and candidate.get("id") is not None:
                return TicketRef(ticket_id=str(candidate["id"]))
    return None
