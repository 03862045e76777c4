"""The http provider at the unit level: the exact request, and what each answer becomes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import hypothesis
import pytest
import respx
from hypothesis import strategies as st

from bridge.config import Config, Defaults, ProviderConfig
from bridge.exceptions import Problem
from bridge.providers.base import Job, OutcomeKind
from bridge.providers.http import ORIGIN_PROBLEM, origin, written_origin
from bridge.providers.registry import build_providers
from bridge.rendering.templates import Templates
from bridge.tickets import ActionKind, Contact, TicketAction, TicketRef

NOW = 1_700_000_000.0


def built(tmp_path: Path, client: httpx.AsyncClient, **settings) -> tuple[dict, list[Problem]]:
    """The providers built from one `http` provider `desk` with `settings`, and the problems."""
    (tmp_path / "desk.json.j2").write_text(
        '{"title": {{ ticket.subject | tojson }}, "n": {{ body.n }}}'
    )
    config = Config(
        rules_dir=tmp_path,
        templates_dir=tmp_path,
        sources={},
        providers={
            "desk": ProviderConfig(
                name="desk",
                type="http",
                settings={"type": "http", **settings},
                base_url=settings.get("base_url"),
                location=None,  # type: ignore[arg-type]
            )
        },
        rules=(),
        vars={},
        defaults=Defaults(),
        locations={},
    )
    problems: list[Problem] = []
    providers = build_providers(config, Templates(tmp_path), client, problems)
    return providers, problems


def provider(tmp_path: Path, client: httpx.AsyncClient, **settings):
    providers, problems = built(tmp_path, client, **settings)
    assert problems == []
    return providers["desk"]


def job(**overrides) -> Job:
    action = TicketAction(
        action=ActionKind.CREATE_TICKET,
        provider="desk",
        contact=Contact(email="ana@example.com"),
        subject="Hello",
        correlate="order-7",
    )
    fields = {
        "delivery_id": "dlv_1",
        "attempt": 1,
        "action": action,
        "ticket_ref": None,
        "ticket_open": None,
        "context": {"body": {"n": 7, "id": "X"}, "headers": {}, "query": {}, "source": "shop"},
    }
    return Job(**{**fields, **overrides})


def run(coro):
    import asyncio

    return asyncio.run(coro)


@respx.mock
def test_sends_the_rendered_url_headers_and_body(tmp_path):
    route = respx.put("https://desk.example.com/api/tickets/order-7").mock(
        return_value=httpx.Response(201, json={"ticket": {"id": 991}})
    )

    async def go():
        async with httpx.AsyncClient() as client:
            desk = provider(
                tmp_path,
                client,
                url="https://desk.example.com/api/tickets/{{ ticket.correlate }}",
                method="put",
                headers={"Authorization": "Bearer tok-123", "X-Source": "{{ source }}"},
                body={"template": "desk.json.j2"},
            )
            return await desk.deliver(job())

    outcome = run(go())
    request = route.calls.last.request
    assert request.method == "PUT"
    assert request.headers["authorization"] == "Bearer tok-123"
    assert request.headers["x-source"] == "shop"
    assert request.headers["idempotency-key"] == "dlv_1"
    assert json.loads(request.content) == {"title": "Hello", "n": 7}
    assert outcome.kind is OutcomeKind.SUCCESS
    assert outcome.ticket_ref == TicketRef(ticket_id="991")


@respx.mock
def test_without_body_the_action_is_sent_and_base_url_prefixes_the_path(tmp_path):
    route = respx.post("http://127.0.0.1:5999/v1/tickets").mock(
        return_value=httpx.Response(200, json={})
    )

    async def go():
        async with httpx.AsyncClient() as client:
            desk = provider(tmp_path, client, url="/v1/tickets", base_url="http://127.0.0.1:5999")
            return await desk.deliver(job(ticket_ref=TicketRef(ticket_id="old")))

    outcome = run(go())
    sent = json.loads(route.calls.last.request.content)
    assert sent["action"] == "create_ticket" and sent["contact"] == {"email": "ana@example.com"}
    assert outcome.ticket_ref == TicketRef(
        ticket_id="old"
    )  # no id in the answer: keep the known one


@pytest.mark.parametrize(
    ("answer", "kind", "message"),
    [
        (httpx.Response(503, json={"message": "down"}), OutcomeKind.RETRYABLE, "HTTP 503: down"),
        (
            httpx.Response(429, headers={"Retry-After": "12"}),
            OutcomeKind.RETRYABLE,
            "HTTP 429: Too Many Requests",
        ),
        (
            httpx.Response(400, json={"error": "subject missing"}),
            OutcomeKind.PERMANENT,
            "HTTP 400: subject missing",
        ),
        (
            httpx.Response(401, json={"error": "bad token"}),
            OutcomeKind.UNAUTHORIZED,
            "HTTP 401: bad token",
        ),
        (httpx.ConnectError("refused"), OutcomeKind.RETRYABLE, "ConnectError: refused"),
    ],
)
@respx.mock
def test_answers_are_classified(tmp_path, answer, kind, message):
    route = respx.post("https://desk.example.com/t")
    if isinstance(answer, Exception):
        route.mock(side_effect=answer)
    else:
        route.mock(return_value=answer)

    async def go():
        async with httpx.AsyncClient() as client:
            return await provider(tmp_path, client, url="https://desk.example.com/t").deliver(job())

    outcome = run(go())
    assert outcome.kind is kind
    assert outcome.message == message
    if answer.__class__ is httpx.Response and answer.status_code == 429:
        assert outcome.retry_after == 12


@respx.mock
def test_a_template_that_fails_at_send_time_is_permanent_and_sends_nothing(tmp_path):
    route = respx.post("https://desk.example.com/t")

    async def go():
        async with httpx.AsyncClient() as client:
            desk = provider(
                tmp_path,
                client,
                url="https://desk.example.com/t",
                body={"x": "{{ body.missing.deep }}"},
            )
            return await desk.deliver(job())

    outcome = run(go())
    assert outcome.kind is OutcomeKind.PERMANENT
    assert "missing" in outcome.message
    assert not route.called


# -- where the bridge connects is configuration, never payload ---------------------------------


def _problems_for(tmp_path: Path, **settings) -> list[Problem]:
    return built(tmp_path, httpx.AsyncClient(), **settings)[1]


@pytest.mark.parametrize(
    "url",
    [
        "{{ body.callback }}",
        "https://{{ body.tenant }}.desk.example/tickets",
        "https://desk.example{{ body.path }}",
        "https://desk.example:{{ body.port }}/tickets",
        "{{ 'https' }}://desk.example/tickets",
    ],
)
def test_a_url_whose_origin_a_template_could_decide_is_a_check_problem(tmp_path, url):
    (problem,) = _problems_for(tmp_path, url=url)
    assert problem.message == ORIGIN_PROBLEM


@pytest.mark.parametrize(
    "url",
    [
        "https://desk.example",
        "https://desk.example/tickets/{{ ticket.correlate }}",
        "http://127.0.0.1:5999?ref={{ body.id }}",
        "https://desk.example#{{ body.id }}",
    ],
)
def test_a_url_that_writes_out_its_origin_is_accepted(tmp_path, url):
    assert _problems_for(tmp_path, url=url) == []


_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@hypothesis.given(
    literal=st.sampled_from(
        [
            "https://desk.example/",
            "http://127.0.0.1:5999/a?",
            "https://h.example:8443#",
            "http://h/",
        ]
    ),
    before=_TEXT.filter(lambda t: "{" not in t),
    value=_TEXT,
    after=_TEXT,
)
def test_whatever_a_payload_renders_the_written_origin_holds(literal, before, value, after):
    template = literal + before + "{{ body.x }}" + after
    written = written_origin(template)
    assert written is not None
    try:
        rendered = httpx.URL(literal + before + value + after)
    except httpx.InvalidURL:
        return  # refused as an invalid url at send time
    assert origin(rendered) == written


@respx.mock
def test_a_rendered_url_that_leaves_the_written_origin_is_refused_unsent(tmp_path):
    route = respx.route().mock(return_value=httpx.Response(201, json={}))

    async def go():
        async with httpx.AsyncClient() as client:
            desk = provider(tmp_path, client, url="https://desk.example/{{ body.id }}")
            desk._origin = ("https", "elsewhere.example", 443)  # as if a url had escaped it
            return await desk.deliver(job())

    outcome = run(go())
    assert outcome.kind is OutcomeKind.PERMANENT
    assert (
        outcome.message
        == "refused: the rendered url goes to https://desk.example:443, not where configured"
    )
    assert not route.called
