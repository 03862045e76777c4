"""The `glassix` provider: Glassix REST API v1.2 (https://{workspace}.glassix.com/api/v1.2).

    create_ticket  POST /tickets/create (participants, field1..10, tags, uniqueArgument,
                   transactions); then POST /tickets/send/{id} for an outgoing message or
                   POST /tickets/addnote/{id} for a note
    update_ticket  PUT /tickets/setfields/{id}, POST /tickets/addtags/{id}, then the message
                   (an incoming one becomes a note: the API cannot write as the customer)
    close_ticket   the update's calls, then PUT /tickets/setstate/{id}?nextState=Closed
    reopen_ticket  PUT /tickets/setstate/{id}?nextState=Open, then the update's calls
    add_note       the update's calls with the message as POST /tickets/addnote/{id}

Every call carries a bearer token from POST /token/get (token.py: cached per workspace,
key and user, renewed before it expires and once on a 401). The ticket id lives in the
correlate map only: Glassix cannot look a ticket up by contact, so an action with no known
ticket follows on_missing. The calls of one delivery that succeeded are remembered (in this
process), so a retry after a later call failed neither creates the ticket twice nor repeats
a message.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
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
    excerpt,
    exchange,
    ticket_not_found,
)
from bridge.providers.glassix.body import BodyError, GlassixSettings, create_body
from bridge.providers.glassix.dryrun import dry_run_answer
from bridge.providers.glassix.plan import Call, calls_after, in_transactions, open_after
from bridge.providers.glassix.settings import read_settings, rule_problems
from bridge.providers.glassix.token import DEFAULT_LIFETIME, Granted, TokenCache, TokenKey
from bridge.rendering.templates import Templates
from bridge.tickets import ActionKind, TicketRef

REMEMBERED = 1024  # deliveries whose finished calls are kept for a retry


@dataclass(frozen=True, kw_only=True)
class Progress:
    ticket_id: str
    created: bool  # the ticket was created by this delivery
    done: int  # calls after the create that succeeded


class GlassixProvider(Provider):
    capabilities = Capabilities(fields=TICKET_FIELDS - {"contact_metadata"})

    def __init__(
        self,
        *,
        name: str,
        client: httpx.AsyncClient,
        settings: GlassixSettings,
        timeout: float,
        secrets: Iterable[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name=name, secrets=secrets)
        self._client = client
        self._settings = settings
        self._timeout = timeout
        self._clock = clock
        self._tokens = TokenCache(clock=clock)
        self._key: TokenKey = (settings.workspace, settings.api_key, settings.user_name)
        self._progress: OrderedDict[str, Progress] = OrderedDict()

    def credentials(self) -> Iterable[str]:
        s = self._settings
        return (s.api_key, s.api_secret, *self._tokens.issued())

    async def attempt(self, job: Job) -> Outcome:
        action = job.action
        progress = self._resumed(job)
        ticket_id = progress.ticket_id if progress is not None else _known(job)
        if ticket_id is None and action.action is not ActionKind.CREATE_TICKET:
            looked = "not in the correlate map; Glassix cannot look a ticket up by contact"
            missing = ticket_not_found(job, looked)
            if missing is not None:
                return missing
        created = ticket_id is None or (progress is not None and progress.created)
        shown: httpx.Response | None = None  # whose answer the attempt log keeps
        try:
            plan = calls_after(action, self._settings, created=created)
            body = self._create_body(job) if ticket_id is None else None
        except BodyError as exc:
            return Outcome(kind=OutcomeKind.PERMANENT, message=str(exc))
        if ticket_id is None:
            made = await self._create(job.delivery_id, body)
            if isinstance(made, Outcome):
                return made
            shown = made
            ticket_id = self._progress[job.delivery_id].ticket_id
        ref = replace(job.ticket_ref or TicketRef(), ticket_id=ticket_id)
        if created:  # a new ticket: nothing of an older one (closed, or on_existing: create)
            ref = TicketRef(ticket_id=ticket_id)
        done = progress.done if progress is not None else 0
        for number, call in enumerate(plan(ticket_id)):
            if number < done:
                continue
            answer = await self._call(call)
            if isinstance(answer, Outcome):
                prefix = f"ticket {ticket_id} created, then " if created else ""
                return replace(answer, message=prefix + answer.message, ticket_ref=ref)
            shown = shown if created else answer
            self._remember(
                job.delivery_id, Progress(ticket_id=ticket_id, created=created, done=number + 1)
            )
        self._progress.pop(job.delivery_id, None)
        return Outcome(
            kind=OutcomeKind.SUCCESS,
            status_code=shown.status_code if shown is not None else None,
            response_excerpt=excerpt(shown.text) if shown is not None else None,
            ticket_ref=ref,
            ticket_open=open_after(action.action, created=created),
        )

    def _resumed(self, job: Job) -> Progress | None:
        """What an earlier attempt of this delivery got done on the same ticket, if anything."""
        progress = self._progress.get(job.delivery_id)
        if progress is None or (progress.ticket_id != _known(job) and not progress.created):
            return None
        return progress

    async def _create(self, delivery_id: str, body: Any) -> httpx.Response | Outcome:
        """POST tickets/create; the new ticket id is remembered for this delivery."""
        answer = await self._call(Call(method="POST", path="tickets/create", json=body))
        if isinstance(answer, Outcome):
            return answer
        ticket_id = _ticket_id(answer)
        if ticket_id is None:
            return Outcome(
                kind=OutcomeKind.PERMANENT,
                status_code=answer.status_code,
                message="tickets/create answered without a ticket id",
                response_excerpt=excerpt(answer.text),
            )
        self._remember(delivery_id, Progress(ticket_id=ticket_id, created=True, done=0))
        return answer

    def _create_body(self, job: Job) -> dict[str, Any]:
        return create_body(
            job.action,
            self._settings,
            event_id=job.event_id or job.delivery_id,
            with_message=in_transactions(job.action),
        )

    # -- one call, with the token -------------------------------------------------------------

    async def _call(self, call: Call) -> httpx.Response | Outcome:
        """One API call with a bearer token; a 401 on a cached token renews it once."""
        token = await self._tokens.get(self._key, self._fetch_token)
        if isinstance(token, Outcome):
            return token
        answer = await self._send(call, token.value)
        if isinstance(answer, Outcome) and answer.status_code == 401 and not token.fresh:
            self._tokens.invalidate(self._key, token.value)
            token = await self._tokens.get(self._key, self._fetch_token)
            if isinstance(token, Outcome):
                return token
            answer = await self._send(call, token.value)
        return answer

    async def _send(self, call: Call, token: str) -> httpx.Response | Outcome:
        request = self._client.build_request(
            call.method,
            f"{self._settings.base_url}/{call.path}",
            params=call.params,
            json=call.json,
            headers={"Authorization": f"Bearer {token}"},
        )
        return self._classified(call, await self._exchange(request))

    async def _fetch_token(self) -> Granted | Outcome:
        s = self._settings
        request = self._client.build_request(
            "POST",
            f"{s.base_url}/token/get",
            json={"apiKey": s.api_key, "apiSecret": s.api_secret, "userName": s.user_name},
        )
        answer = self._classified(
            Call(method="POST", path="token/get"), await self._exchange(request)
        )
        if isinstance(answer, Outcome):
            return answer
        try:
            data = answer.json()
        except ValueError:
            data = None
        value = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            return Outcome(
                kind=OutcomeKind.PERMANENT,
                status_code=answer.status_code,
                message="token/get answered without an access_token",
            )
        lifetime = data.get("expires_in") if isinstance(data, dict) else None
        seconds = float(lifetime) if isinstance(lifetime, int | float) and lifetime > 0 else None
        return Granted(value=value, expires_in=seconds or DEFAULT_LIFETIME)

    async def _exchange(self, request: httpx.Request) -> httpx.Response | Outcome:
        return await exchange(self._client, request, timeout=self._timeout, now=self._clock())

    def _classified(self, call: Call, answer: httpx.Response | Outcome) -> httpx.Response | Outcome:
        """Glassix's error text is {"Message": ...}; name the call; never show a credential."""
        if isinstance(answer, httpx.Response):
            return answer
        message = answer.message
        said = _glassix_message(answer.response_excerpt)
        if said and answer.status_code is not None:
            message = f"HTTP {answer.status_code}: {said}"
        return replace(
            answer,
            message=f"{call.path}: {message}",
        )

    def _remember(self, delivery_id: str, progress: Progress) -> None:
        self._progress[delivery_id] = progress
        self._progress.move_to_end(delivery_id)
        while len(self._progress) > REMEMBERED:
            self._progress.popitem(last=False)

    # -- `ticketbridge try` --------------------------------------------------------------------

    def dry_run_answer(
        self, request: httpx.Request, *, earlier: Sequence[httpx.Request] = ()
    ) -> httpx.Response:
        return dry_run_answer(request, earlier=earlier)


def _known(job: Job) -> str | None:
    """The ticket an action works on: none for a create, which always makes a new ticket (the
    worker has already turned a create for an open correlated ticket into an update)."""
    if job.action.action is ActionKind.CREATE_TICKET or job.ticket_ref is None:
        return None
    return job.ticket_ref.ticket_id


def _ticket_id(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("id") is not None:
        return str(data["id"])
    return None


def _glassix_message(text: str | None) -> str | None:
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    said = data.get("Message") if isinstance(data, dict) else None
    return excerpt(said, 200) if isinstance(said, str) and said else None


def build(
    p: ProviderConfig,
    config: Config,
    templates: Templates,
    client: httpx.AsyncClient,
    problems: list[Problem],
) -> Provider:
    settings = read_settings(p, config, problems)
    rule_problems(p, settings, config, problems)
    return GlassixProvider(
        name=p.name,
        client=client,
        settings=settings,
        timeout=p.timeout,
        secrets=config.secrets,
    )
