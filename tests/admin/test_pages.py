"""The /admin HTML pages through a real server: login and its cookie, the session guard, CSRF
on every button, what each page shows, and that payloads and secrets stay harmless text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fakes.provider import FakeProvider
from tests.helpers import poll

from .conftest import ADMIN_TOKEN, COOKIE, HELPDESK_TOKEN, Admin, csrf_of, start_admin

PAGES = ["/admin/", "/admin/events", "/admin/dead", "/admin/providers"]


@pytest.fixture
def dead_event(admin: Admin) -> str:
    """An event whose helpdesk delivery died: the helpdesk refused our token (422)."""
    admin.helpdesk.answer_next(422, {"message": "invalid token for this account"})
    event_id = admin.post_event(
        {"kind": "order", "order": "D-1", "email": "d@example.com", "note": "call me"}
    )
    assert admin.settled(event_id)["status"] == "failed"
    return event_id


def delivery_of(admin: Admin, event_id: str) -> dict[str, object]:
    deliveries = admin.event_json(event_id)["deliveries"]
    assert isinstance(deliveries, list) and len(deliveries) == 1
    delivery: dict[str, object] = deliveries[0]
    return delivery


# -- login, cookie, session --------------------------------------------------------------


def test_the_login_form_is_served_without_a_session(admin: Admin) -> None:
    answer = httpx.get(f"{admin.url}/admin/login")
    assert answer.status_code == 200
    assert 'name="token"' in answer.text and 'type="password"' in answer.text


def test_a_wrong_token_shows_the_form_again_with_401(admin: Admin) -> None:
    with admin.client() as client:
        answer = client.post("/admin/login", data={"token": "not-the-token"})
        empty = client.post("/admin/login", data={})
    assert answer.status_code == 401
    assert "That is not the admin token." in answer.text
    assert 'name="token"' in answer.text
    assert "set-cookie" not in answer.headers
    assert empty.status_code == 401


def test_the_right_token_sets_a_secure_httponly_strict_cookie_and_redirects(admin: Admin) -> None:
    with admin.client() as client:
        answer = client.post("/admin/login", data={"token": ADMIN_TOKEN})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/"
    cookie = answer.headers["set-cookie"]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert attributes[0].startswith(f"{COOKIE}=")
    assert "httponly" in attributes
    assert "secure" in attributes
    assert "samesite=strict" in attributes
    assert "path=/admin" in attributes
    assert ADMIN_TOKEN not in cookie


def test_login_returns_to_the_page_asked_for_but_never_off_the_admin_pages(admin: Admin) -> None:
    with admin.client() as client:
        kept = client.post("/admin/login", data={"token": ADMIN_TOKEN, "next": "/admin/dead"})
        for elsewhere in ("https://evil.example/", "//evil.example/admin", "/hooks/shop"):
            sent = client.post("/admin/login", data={"token": ADMIN_TOKEN, "next": elsewhere})
            assert sent.headers["location"] == "/admin/"
    assert kept.headers["location"] == "/admin/dead"


@pytest.mark.parametrize("path", [*PAGES, "/admin/events/evt_nope"])
def test_every_page_without_a_session_redirects_to_the_login(admin: Admin, path: str) -> None:
    with admin.client() as anonymous, admin.client("123.forged") as forged:
        for client in (anonymous, forged):
            answer = client.get(path)
            assert answer.status_code == 303
            assert urlsplit(answer.headers["location"]).path == "/admin/login"


def test_the_login_redirect_remembers_the_page(admin: Admin) -> None:
    answer = httpx.get(f"{admin.url}/admin/dead?provider=helpdesk")
    location = urlsplit(answer.headers["location"])
    assert parse_qs(location.query) == {"next": ["/admin/dead?provider=helpdesk"]}


def test_a_bare_admin_path_leads_to_the_overview(admin: Admin) -> None:
    with admin.login() as client:
        bare = client.get("/admin")
        assert bare.status_code in (307, 308)
        assert urlsplit(bare.headers["location"]).path == "/admin/"
        answer = client.get(bare.headers["location"])
    assert answer.status_code == 200
    assert "<h1>Overview</h1>" in answer.text


def test_logout_ends_the_session(admin: Admin) -> None:
    with admin.login() as client:
        csrf = csrf_of(client.get("/admin/").text)
        answer = client.post("/admin/logout", data={"csrf": csrf})
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/admin/login")
    assert f'{COOKIE}=""' in answer.headers["set-cookie"] or "max-age=0" in (
        answer.headers["set-cookie"].lower()
    )


# -- CSRF ------------------------------------------------------------------------------------


def test_every_post_refuses_a_missing_or_wrong_csrf_token(admin: Admin, dead_event: str) -> None:
    delivery_id = delivery_of(admin, dead_event)["id"]
    posts = [
        "/admin/logout",
        f"/admin/events/{dead_event}/replay",
        f"/admin/deliveries/{delivery_id}/retry",
        "/admin/providers/helpdesk/pause",
        "/admin/providers/helpdesk/resume",
    ]
    with admin.login() as client:
        for path in posts:
            for data in ({}, {"csrf": ""}, {"csrf": "0" * 64}, {"csrf": ADMIN_TOKEN}):
                answer = client.post(path, data=data)
                assert answer.status_code == 403, (path, data)
                assert "security token" in answer.text
        # nothing happened: still dead, not replayed, not paused, still logged in
        assert delivery_of(admin, dead_event)["status"] == "dead"
        providers = client.get("/admin/providers").text
        assert "paused" not in re.sub(r"<style>.*?</style>", "", providers, flags=re.S)
        assert client.get("/admin/").status_code == 200


def test_a_post_without_a_session_goes_to_the_login(admin: Admin, dead_event: str) -> None:
    answer = httpx.post(f"{admin.url}/admin/events/{dead_event}/replay", data={"csrf": "x"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/login"


# -- the pages ---------------------------------------------------------------------------------


def test_each_page_renders_with_its_content(admin: Admin, dead_event: str) -> None:
    delivery_id = delivery_of(admin, dead_event)["id"]
    with admin.login() as client:
        pages = {path: client.get(path) for path in [*PAGES, f"/admin/events/{dead_event}"]}
    for path, answer in pages.items():
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith("text/html")
        assert "script-src" not in answer.headers["content-security-policy"]
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"
        assert "<script" not in answer.text
        assert 'name="viewport"' in answer.text

    overview = pages["/admin/"].text
    assert "<svg" in overview and "polyline" in overview
    assert "Queue depth" in overview
    assert '<a href="/admin/dead?provider=helpdesk">helpdesk</a>' in overview

    events = pages["/admin/events"].text
    assert f'href="/admin/events/{dead_event}"' in events

    detail = pages[f"/admin/events/{dead_event}"].text
    assert "order-ticket" in detail  # the matched rule, in the trace
    assert "HTTP 422: invalid token for this account" in detail  # the delivery's reason
    assert f'action="/admin/deliveries/{delivery_id}/retry"' in detail
    assert f'action="/admin/events/{dead_event}/replay"' in detail
    assert "[redacted]" not in detail or HELPDESK_TOKEN not in detail

    dead = pages["/admin/dead"].text
    assert delivery_id in dead
    assert "invalid token for this account" in dead
    assert f'action="/admin/deliveries/{delivery_id}/retry"' in dead

    providers = pages["/admin/providers"].text
    assert "helpdesk" in providers and "audit" in providers
    assert 'action="/admin/providers/helpdesk/pause"' in providers


def test_the_event_list_filters_and_pages(admin: Admin) -> None:
    first = admin.post_event({"kind": "note", "order": "F-1"})
    second = admin.post_event({"kind": "note", "order": "F-2"})
    admin.settled(second)
    with admin.login() as client:
        one = client.get("/admin/events", params={"source": "shop", "limit": "1"}).text
        assert second in one and first not in one
        older = re.search(r'href="(/admin/events\?[^"]*before=[^"]+)"', one)
        assert older, "no link to older events"
        page_two = client.get(older.group(1).replace("&amp;", "&")).text
        assert first in page_two and second not in page_two
        failed = client.get("/admin/events", params={"status": "failed"}).text
        assert second not in failed
        later = client.get("/admin/events", params={"since": "2999-01-01T00:00:00Z"}).text
        assert second not in later and "No events" in later
        bad = client.get("/admin/events", params={"since": "yesterday"})
        assert bad.status_code == 400
        assert "since: expected an ISO 8601 time" in bad.text


def test_the_dead_list_filters_by_provider(admin: Admin, dead_event: str) -> None:
    delivery_id = str(delivery_of(admin, dead_event)["id"])
    with admin.login() as client:
        assert delivery_id in client.get("/admin/dead", params={"provider": "helpdesk"}).text
        assert delivery_id not in client.get("/admin/dead", params={"provider": "audit"}).text


def test_an_unknown_event_is_a_404_page(admin: Admin) -> None:
    with admin.login() as client:
        answer = client.get("/admin/events/evt_missing")
    assert answer.status_code == 404
    assert "There is no event evt_missing." in answer.text


# -- the buttons ---------------------------------------------------------------------------


def test_retry_queues_a_dead_delivery_again_and_it_is_done(admin: Admin, dead_event: str) -> None:
    delivery_id = str(delivery_of(admin, dead_event)["id"])
    with admin.login() as client:
        csrf = csrf_of(client.get("/admin/dead").text)
        answer = client.post(
            f"/admin/deliveries/{delivery_id}/retry",
            data={"csrf": csrf, "back": "/admin/dead?provider=helpdesk", "event": dead_event},
        )
        assert answer.status_code == 303
        location = answer.headers["location"]
        assert location.startswith("/admin/dead?provider=helpdesk&flash=retried")
        shown = client.get(location).text
        assert f"Delivery {delivery_id} is queued again." in shown
        assert f'href="/admin/events/{dead_event}"' in shown
        poll(lambda: delivery_of(admin, dead_event)["status"] == "done", what="the retry")
        missing = client.post("/admin/deliveries/dlv_nope/retry", data={"csrf": csrf})
        assert "flash=no_delivery" in missing.headers["location"]
        offsite = client.post(
            "/admin/deliveries/dlv_nope/retry",
            data={"csrf": csrf, "back": "https://evil.example/admin"},
        )
        assert offsite.headers["location"].startswith("/admin/dead?")


def test_replay_routes_the_event_again(admin: Admin, dead_event: str) -> None:
    old = str(delivery_of(admin, dead_event)["id"])
    with admin.login() as client:
        csrf = csrf_of(client.get(f"/admin/events/{dead_event}").text)
        answer = client.post(f"/admin/events/{dead_event}/replay", data={"csrf": csrf})
        assert answer.status_code == 303
        assert answer.headers["location"] == (
            f"/admin/events/{dead_event}?flash=replayed&ref={dead_event}"
        )
        assert "was routed again" in client.get(answer.headers["location"]).text
        assert client.post("/admin/events/evt_nope/replay", data={"csrf": csrf}).status_code == 404

    def replayed() -> bool:
        deliveries = admin.event_json(dead_event)["deliveries"]
        assert isinstance(deliveries, list)
        statuses = {d["id"]: d["status"] for d in deliveries}
        return statuses.get(old) == "cancelled" and "done" in statuses.values()

    poll(replayed, timeout=15, what="the replayed delivery")


def test_pause_and_resume_a_provider(admin: Admin) -> None:
    with admin.login() as client:
        csrf = csrf_of(client.get("/admin/providers").text)
        paused = client.post("/admin/providers/audit/pause", data={"csrf": csrf, "for": "1h"})
        assert paused.headers["location"] == "/admin/providers?flash=paused&ref=audit"
        page = client.get(paused.headers["location"]).text
        assert "Provider audit is paused." in page
        assert 'action="/admin/providers/audit/resume"' in page
        assert "paused from the admin pages" in client.get("/admin/").text
        bad = client.post("/admin/providers/audit/pause", data={"csrf": csrf, "for": "soon"})
        assert "flash=bad_duration" in bad.headers["location"]
        resumed = client.post("/admin/providers/audit/resume", data={"csrf": csrf})
        assert resumed.headers["location"] == "/admin/providers?flash=resumed&ref=audit"
        again = client.post("/admin/providers/audit/resume", data={"csrf": csrf})
        assert "flash=not_held" in again.headers["location"]
        page = client.get("/admin/providers").text
        assert 'action="/admin/providers/audit/pause"' in page
        unknown = client.post("/admin/providers/nope/pause", data={"csrf": csrf})
        assert unknown.status_code == 404


# -- payloads are text, secrets are masked -----------------------------------------------


def test_payload_markup_and_template_syntax_show_as_text(admin: Admin) -> None:
    hostile = "<script>alert(1)</script> {{ 7*7 }} {% raw %}<img src=x onerror=alert(2)>"
    event_id = admin.post_event(
        {"kind": "order", "order": hostile, "email": "x@example.com", "note": hostile},
        **{"X-Note": "<script>alert(3)</script>"},
    )
    admin.settled(event_id)
    with admin.login() as client:
        pages = [
            client.get(f"/admin/events/{event_id}").text,
            client.get("/admin/events").text,
            client.get("/admin/events", params={"since": '"><script>alert(4)</script>'}).text,
            client.get("/admin/?flash=retried&ref=<script>alert(5)</script>").text,
        ]
    for page in pages:
        assert "<script>" not in page and "<img" not in page
    detail = pages[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt; {{ 7*7 }} {% raw %}&lt;img" in detail
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in detail  # the header
    assert "&lt;script&gt;alert(5)&lt;/script&gt;" in pages[3]


def test_secrets_never_show_on_a_page(admin: Admin) -> None:
    event_id = admin.post_event(
        {"kind": "order", "order": "S-1", "email": "s@example.com", "note": HELPDESK_TOKEN},
        **{"Authorization": f"Bearer {ADMIN_TOKEN}", "X-Shop-Token": HELPDESK_TOKEN},
    )
    admin.settled(event_id)
    with admin.login() as client:
        pages = [client.get(path).text for path in [*PAGES, f"/admin/events/{event_id}"]]
    for page in pages:
        assert HELPDESK_TOKEN not in page
        assert ADMIN_TOKEN not in page
    assert "[redacted]" in pages[-1]


# -- no token, no admin ----------------------------------------------------------------------


@pytest.fixture
def tokenless(tmp_path: Path, helpdesk: FakeProvider) -> Iterator[Admin]:
    yield from start_admin(tmp_path, helpdesk, token=None)


def test_without_an_admin_token_every_admin_path_is_404(tokenless: Admin) -> None:
    for path in ["/admin", "/admin/", "/admin/login", "/admin/events", "/admin/dead"]:
        assert httpx.get(f"{tokenless.url}{path}").status_code == 404, path
    login = httpx.post(f"{tokenless.url}/admin/login", data={"token": ""})
    assert login.status_code == 404
