"""The Provider interface, the outcome of one attempt, and HTTP response classification.

An adapter makes exactly one attempt at an action and says what came of it; only the worker
retries (STYLE habit 3). Adapters get their httpx client injected, so `ticketbridge try` can
run the very same code against a recording transport and show the exact requests.
"""

from __future__ import annotations

import abc
import email.utils
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from bridge.redaction import mask
from bridge.tickets import ActionKind, Direction, OnMissing, TicketAction, TicketRef

EXCERPT_LIMIT = 500


class OutcomeKind(enum.StrEnum):
    SUCCESS = "success"
    RETRYABLE = "retryable"  # connect error, timeout, 408, 425, 429, 5xx
    PERMANENT = "permanent"  # other 4xx, config and render errors: dead at once
    UNAUTHORIZED = "unauthorized"  # 401 / 403: the provider's credentials are wrong
    SKIPPED = "skipped"  # nothing to act on (no ticket found and on_missing: skip)


@dataclass(frozen=True, kw_only=True)
class Outcome:
    kind: OutcomeKind
    message: str = ""
    status_code: int | None = None
    retry_after: float | None = None  # seconds, as the provider asked
    response_excerpt: str | None = None
    ticket_ref: TicketRef | None = None
    ticket_open: bool | None = None

    def masked(self, secrets: Iterable[str]) -> Outcome:
        """This outcome with every secret masked out of what the provider said."""
        secrets = tuple(secrets)
        excerpt = self.response_excerpt
        return replace(
            self,
            message=mask(self.message, secrets),
            response_excerpt=mask(excerpt, secrets) if excerpt is not None else None,
        )


@dataclass(frozen=True, kw_only=True)
class Job:
    """One attempt at one delivery."""

    delivery_id: str
    attempt: int
    action: TicketAction
    ticket_ref: TicketRef | None  # from the correlate map, when the key is known
    ticket_open: bool | None
    event_id: str = ""
    # the event's template context (DESIGN §2.5), for a provider that renders templates when
    # it delivers (Provider.renders_templates); empty for the others
    context: Mapping[str, Any] = field(default_factory=dict)


#: the parts of a ticket action a rule can fill (DESIGN §2.4)
TICKET_FIELDS = frozenset(
    {"contact", "subject", "message", "metadata", "contact_metadata", "tags", "options"}
)


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a provider's API can do. A rule asking for more is an error from `check`
    (DESIGN §2.6: what an API lacks is a configuration error, never a silent drop)."""

    actions: frozenset[ActionKind] = frozenset(ActionKind)
    fields: frozenset[str] = TICKET_FIELDS
    directions: frozenset[Direction] = frozenset(Direction)  # of `message`


class Provider(abc.ABC):
    """One helpdesk (or log, or generic HTTP endpoint)."""

    capabilities: Capabilities = Capabilities()
    # whether `attempt` renders templates with the event (Job.context); for the others the
    # worker does not read the payload again: routing parsed it, once
    renders_templates: bool = False

    def __init__(self, *, name: str, secrets: Iterable[str] = ()) -> None:
        self.name = name
        self.secrets = frozenset(secrets)  # the configured secret values (Config.secrets)

    async def deliver(self, job: Job) -> Outcome:
        """One attempt, its outcome masked: an API echoing a credential back must not carry
        it into the attempt log, a log line or `try`'s output. This is the one place a
        provider's outcomes are masked: with the configured secrets and its credentials."""
        outcome = await self.attempt(job)
        return outcome.masked(self.secrets | frozenset(self.credentials()))

    @abc.abstractmethod
    async def attempt(self, job: Job) -> Outcome:
        """Make one attempt; never raise for anything the provider or network did."""

    def credentials(self) -> Iterable[str]:
        """The secret values this provider holds: its settings' and any the helpdesk issued
        it while it runs (access tokens)."""
        return ()

    def dry_run_answer(
        self, request: httpx.Request, *, earlier: Sequence[httpx.Request] = ()
    ) -> httpx.Response:
        """The stubbed answer `ticketbridge try` gives `request` instead of the network.

        A stub answers as the helpdesk would on a first delivery for a customer it has never
        seen: searches and lookups find nothing but what `earlier` (the requests this delivery
        sent before, in order) created, and a create answers the created record with its ids,
        so the dry run takes the delivery's real path and shows the requests it really sends.
        Each adapter's stub lives in its package (`<provider>/dryrun.py`); this default suits an
        API that is called once and answers with what it made."""
        return httpx.Response(200, json={"id": "dry-run"})


def ticket_not_found(job: Job, looked: str) -> Outcome | None:
    """What to do when the ticket an action needs is not found (DESIGN §2.6 `on_missing`):
    an Outcome to return (skipped, or a permanent failure), or None to create it instead."""
    if job.action.on_missing is OnMissing.CREATE:
        return None
    message = f"no ticket found for {job.action.action.value} ({looked})"
    if job.action.on_missing is OnMissing.FAIL:
        return Outcome(kind=OutcomeKind.PERMANENT, message=message)
    return Outcome(kind=OutcomeKind.SKIPPED, message=message)


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def excerpt(text: str, limit: int = EXCERPT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def classify_response(response: httpx.Response, *, now: float) -> Outcome:
    """DESIGN §3.2: 2xx success; 408, 425, 429, 5xx retryable; 401, 403 unauthorized;
    any other status permanent. The provider's own message is kept in the outcome."""
    status = response.status_code
    text = excerpt(response.text)
    if 200 <= status < 300:
        return Outcome(kind=OutcomeKind.SUCCESS, status_code=status, response_excerpt=text)
    message = f"HTTP {status}: {provider_message(response) or response.reason_phrase}"
    if status in (408, 425, 429) or status >= 500:
        return Outcome(
            kind=OutcomeKind.RETRYABLE,
            status_code=status,
            message=message,
            retry_after=parse_retry_after(response.headers.get("retry-after"), now=now),
            response_excerpt=text,
        )
    kind = OutcomeKind.UNAUTHORIZED if status in (401, 403) else OutcomeKind.PERMANENT
    return Outcome(kind=kind, status_code=status, message=message, response_excerpt=text)


def provider_message(response: httpx.Response) -> str | None:
    """The error message an API put in its JSON body, if it put one in a usual place."""
    try:
        data = response.json()
    except ValueError:
        return excerpt(response.text, 200) or None
    if isinstance(data, dict):
        for key in ("message", "error", "detail", "description", "errors"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return excerpt(value, 200)
            if isinstance(value, (list, dict)) and value:
                return excerpt(str(value), 200)
    return None


def classify_transport_error(exc: httpx.HTTPError) -> Outcome:
    """Connect errors and timeouts are worth retrying; a malformed request is not."""
    if isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)):
        return Outcome(kind=OutcomeKind.RETRYABLE, message=f"{type(exc).__name__}: {exc}")
    return Outcome(kind=OutcomeKind.PERMANENT, message=f"{type(exc).__name__}: {exc}")


async def exchange(
    client: httpx.AsyncClient, request: httpx.Request, *, timeout: float, now: float
) -> httpx.Response | Outcome:
    """Send one request of an adapter: the response when it is a 2xx, else the classified
    Outcome (retryable, permanent, unauthorized) with the provider's own message.

    Adapters that chain calls (a token, a lookup, then the action) return the first Outcome
    they get, so every call of every adapter is classified the same way."""
    request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
    try:
        response = await client.send(request)
    except httpx.HTTPError as exc:
        return classify_transport_error(exc)
    outcome = classify_response(response, now=now)
    return response if outcome.kind is OutcomeKind.SUCCESS else outcome
