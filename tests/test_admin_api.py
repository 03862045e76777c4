"""/admin/api through the real server: every endpoint, filter and error (DESIGN §4.1)."""

from __future__ import annotations

import itertools
import re
import time
from datetime import datetime

import httpx
import pytest

from tests.fakes.provider import FakeProvider
from tests.helpers import poll, running_server, write_tree

TOKEN = "admin-token-5a7c9e"
ADDRESSES = itertools.count(1)
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
TIME_KEYS = {"at", "since", "until", "received_at", "next_attempt_at"}
DESK_TOKEN = "desk-secret-31415"


def tree(tmp_path, desk_url):
    return write_tree(
        tmp_path,
        {
            "rules/main.yaml": f"""
                providers:
                  desk:
                    type: http
                    url: "{desk_url}/tickets"
                    headers: {{Authorization: "Bearer ${{DESK_TOKEN}}"}}
                    retry: {{max_attempts: 1}}
                  audit: {{type: log}}
                defaults:
                  trusted_proxies: ["127.0.0.1"]  # X-Forwarded-For names who is counted
                sources:
                  shop:
                    verify:
                      type: token
                      location: "header:X-Shop-Token"
                      values: ["${{SHOP_TOKEN}}"]
                  crm: {{verify: {{type: none}}}}
                rules:
                  - name: order
                    source: shop
                    action: create_ticket
                    provider: desk
                    ticket: {{subject: "Order {{{{ body.id }}}}", correlate: "o-{{{{ body.id }}}}"}}
                  - name: lead
                    source: crm
                    action: create_ticket
                    provider: audit
                    ticket: {{subject: "Lead {{{{ body.id }}}}"}}
            """,
        },
    )


@pytest.fixture(scope="module")
def desk():
    with FakeProvider().running() as fake:
        yield fake


@pytest.fixture(scope="module")
def server(tmp_path_factory, desk):
    root = tree(tmp_path_factory.mktemp("admin-api"), desk.url)
    env = {"BRIDGE_ADMIN_TOKEN": TOKEN, "DESK_TOKEN": DESK_TOKEN, "SHOP_TOKEN": "shop-secret-27"}
    with running_server(
        rules=root / "rules",
        templates=root / "templates",
        db=f"sqlite:///{root / 'bridge.db'}",
        env=env,
        log=root / "server.log",
    ) as url:
        yield url, root / "server.log"


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def times_in(answer: object) -> list[object]:
    """Every value under a key that holds a time, anywhere in a JSON answer."""
    if isinstance(answer, dict):
        return [v for k, v in answer.items() if k in TIME_KEYS] + [
            t for v in answer.values() for t in times_in(v)
        ]
    if isinstance(answer, list):
        return [t for v in answer for t in times_in(v)]
    return []


def api(url: str) -> httpx.Client:
    return httpx.Client(base_url=f"{url}/admin/api", headers={"Authorization": f"Bearer {TOKEN}"})


def post_order(url: str, order_id: str) -> str:
    response = httpx.post(
        f"{url}/hooks/shop", json={"id": order_id}, headers={"X-Shop-Token": "shop-secret-27"}
    )
    assert response.status_code == 202
    return response.json()["event_id"]


def settled(client: httpx.Client, event_id: str) -> dict:
    def check():
        detail = client.get(f"/events/{event_id}").json()
        return detail if detail["status"] in ("done", "failed") else None

    return poll(check, what=f"event {event_id} to settle")


def test_every_endpoint_needs_the_bearer_token(server):
    url, _ = server
    for method, path in [
        ("GET", "/events"),
        ("GET", "/events/evt_x"),
        ("POST", "/events/evt_x/replay"),
        ("GET", "/deliveries"),
        ("POST", "/deliveries/dlv_x/retry"),
        ("GET", "/providers"),
        ("POST", "/providers/desk/pause"),
        ("POST", "/providers/desk/resume"),
    ]:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            # each from an address of its own, so that the lock-out below is not reached
            headers = {**headers, "X-Forwarded-For": f"203.0.113.{next(ADDRESSES)}"}
            response = httpx.request(method, f"{url}/admin/api{path}", headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.json()["error"] == "unauthorized"
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_failed_authentications_lock_their_address_out_for_a_while(server):
    url, log = server
    attacker = {"X-Forwarded-For": "198.51.100.7"}
    for guess in range(10):
        wrong = {**attacker, "Authorization": f"Bearer guess-{guess}"}
        assert httpx.get(f"{url}/admin/api/events", headers=wrong).status_code == 401
    for headers in (
        {**attacker, "Authorization": "Bearer guess-10"},
        {
            **attacker,
            "Authorization": f"Bearer {TOKEN}",  # even the right token, from that address
        },
    ):
        refused = httpx.get(f"{url}/admin/api/events", headers=headers)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == "too_many_attempts"
        assert 50 <= int(refused.headers["retry-after"]) <= 60
    # the login page counts against the same address, and answers 429 as well
    login = httpx.post(f"{url}/admin/login", data={"token": TOKEN}, headers=attacker)
    assert login.status_code == 429 and "try again in" in login.text
    # anyone else is let in
    with api(url) as client:
        assert client.get("/events", headers={"X-Forwarded-For": "192.0.2.1"}).status_code == 200
    lines = poll(
        lambda: [line for line in log.read_text().splitlines() if "198.51.100.7" in line],
        what="the failures logged",
    )
    assert sum('"admin.auth_failed"' in line for line in lines) == 10
    assert sum('"admin.locked_out"' in line for line in lines) == 1
    assert all('"level": "warning"' in line and "guess-" not in line for line in lines)


def test_a_failed_delivery_is_found_understood_and_retried(server, desk):
    url, log = server
    desk.answer_next(422, {"message": "requester is invalid"})
    event_id = post_order(url, "A-1")
    with api(url) as client:
        detail = settled(client, event_id)
        assert detail["status"] == "failed"
        assert detail["headers"]["x-shop-token"] == "[redacted]"
        assert detail["body"] == {"id": "A-1"}
        assert detail["matched_rules"] == ["order"]
        assert detail["trace"][0]["rule"] == "order" and detail["trace"][0]["matched"]
        (delivery,) = detail["deliveries"]
        assert delivery["status"] == "dead"
        assert delivery["reason"] == "dead: HTTP 422: requester is invalid"
        assert delivery["attempt_log"][0]["status_code"] == 422

        dead = client.get("/deliveries", params={"status": "dead", "provider": "desk"}).json()
        assert delivery["id"] in [d["id"] for d in dead["deliveries"]]
        assert client.get("/deliveries", params={"status": "dead", "provider": "audit"}).json() == {
            "deliveries": []
        }

        retried = client.post(f"/deliveries/{delivery['id']}/retry")
        assert retried.status_code == 200 and retried.json()["status"] == "queued"
        again = settled(client, event_id)
        assert again["status"] == "done"
        assert again["deliveries"][0]["ticket_ref"] is not None
        # a done delivery is not sent again: that would make a second ticket
        refused = client.post(f"/deliveries/{delivery['id']}/retry")
        assert refused.status_code == 409 and refused.json()["status"] == "done"
        assert "it was delivered" in refused.json()["detail"]
        assert "finished" not in refused.json()["detail"]
    assert DESK_TOKEN not in log.read_text()


def test_retry_and_replay_of_what_does_not_exist_or_cannot_be_retried(server, desk):
    url, _ = server
    with api(url) as client:
        assert client.post("/deliveries/dlv_missing/retry").status_code == 404
        missing = client.post("/events/evt_missing/replay")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        assert client.get("/events/evt_missing").status_code == 404

        client.post("/providers/desk/pause")  # hold the delivery back: it stays pending
        event_id = post_order(url, "B-1")
        pending = poll(
            lambda: (d := client.get(f"/events/{event_id}").json())["deliveries"] and d,
            what="the delivery",
        )["deliveries"][0]
        refused = client.post(f"/deliveries/{pending['id']}/retry")
        assert refused.status_code == 409 and refused.json()["error"] == "not_retryable"
        assert "it is still pending" in refused.json()["detail"]
        client.post("/providers/desk/resume")
        assert settled(client, event_id)["status"] == "done"


def test_replay_routes_the_event_again_with_new_deliveries(server):
    url, _ = server
    response = httpx.post(f"{url}/hooks/crm", json={"id": "L-1"})
    event_id = response.json()["event_id"]
    with api(url) as client:
        first = settled(client, event_id)
        replayed = client.post(f"/events/{event_id}/replay")
        assert replayed.status_code == 200
        body = replayed.json()
        assert body["matched_rules"] == ["lead"] and len(body["deliveries"]) == 1
        assert body["deliveries"][0] != first["deliveries"][0]["id"]
        after = settled(client, event_id)
        assert [d["id"] for d in after["deliveries"]] == [
            first["deliveries"][0]["id"],
            body["deliveries"][0],
        ]


def test_events_filter_by_source_status_and_time_and_page(server):
    url, _ = server
    start = time.time()
    ids = [
        httpx.post(f"{url}/hooks/crm", json={"id": f"F-{i}"}).json()["event_id"] for i in range(3)
    ]
    with api(url) as client:
        for event_id in ids:
            settled(client, event_id)
        recent = client.get("/events", params={"source": "crm", "since": start}).json()
        assert [e["id"] for e in recent["events"]] == ids[::-1]
        assert all(e["source"] == "crm" for e in recent["events"])
        iso_since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start - 1))
        assert len(client.get("/events", params={"since": iso_since}).json()["events"]) >= 3
        assert client.get("/events", params={"until": start - 3600}).json()["events"] == []
        done = client.get("/events", params={"status": "done", "source": "crm"}).json()["events"]
        assert set(ids) <= {e["id"] for e in done}

        page = client.get("/events", params={"source": "crm", "since": start, "limit": 2}).json()
        assert [e["id"] for e in page["events"]] == [ids[2], ids[1]]
        assert page["next_before"] == ids[1]
        rest = client.get(
            "/events", params={"source": "crm", "since": start, "before": page["next_before"]}
        ).json()
        assert [e["id"] for e in rest["events"]] == [ids[0]]


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/events", {"limit": "many"}, "limit"),
        ("/events", {"limit": "0"}, "limit"),
        ("/events", {"status": "lost"}, "status"),
        ("/events", {"since": "yesterday"}, "since"),
        ("/events", {"until": "2026-11-21T10:00:00"}, "until"),  # no time zone
        ("/deliveries", {"status": "gone"}, "status"),
        ("/deliveries", {"limit": "-1"}, "limit"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(server, path, params, parameter):
    url, _ = server
    with api(url) as client:
        response = client.get(path, params=params)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_parameter"
    assert response.json()["parameter"] == parameter


def test_providers_pause_and_resume(server):
    url, _ = server
    with api(url) as client:
        listed = {p["name"]: p for p in client.get("/providers").json()["providers"]}
        assert set(listed) == {"desk", "audit"}
        assert listed["audit"]["state"] == "active" and listed["audit"]["type"] == "log"

        before = time.time()
        paused = client.post("/providers/audit/pause", json={"for": "10m"})
        assert paused.status_code == 200 and paused.json()["state"] == "paused"
        listed = {p["name"]: p for p in client.get("/providers").json()["providers"]}
        assert listed["audit"]["state"] == "paused"
        assert listed["audit"]["reason"] == "paused from the admin API"
        # one language for time: the pause answers as the listing does, ISO 8601 in UTC
        until = paused.json()["until"]
        assert until == listed["audit"]["until"] and ISO_UTC.fullmatch(until)
        assert 590 < parse_iso(until) - before < 610
        assert paused.json()["since"] == listed["audit"]["since"]

        forever = client.post("/providers/audit/pause").json()
        assert forever["until"] is None and ISO_UTC.fullmatch(forever["since"])
        listed = {p["name"]: p for p in client.get("/providers").json()["providers"]}
        assert listed["audit"]["until"] is None and listed["audit"]["state"] == "paused"

        assert client.post("/providers/audit/resume").json() == {
            "provider": "audit",
            "resumed": True,
        }
        assert client.post("/providers/audit/resume").json()["resumed"] is False
        assert client.post("/providers/nope/pause").status_code == 404
        assert client.post("/providers/nope/resume").status_code == 404
        bad = client.post("/providers/audit/pause", json={"for": "soon"})
        assert bad.status_code == 400 and bad.json()["parameter"] == "for"
        assert client.post("/providers/audit/pause", content=b"[1]").status_code == 400


def test_every_time_in_every_answer_is_iso_8601_utc(server, desk):
    url, _ = server
    with api(url) as client:
        desk.answer_next(422, {"message": "no"})  # a dead delivery with an attempt
        event_id = post_order(url, "T-1")
        settled(client, event_id)
        paused = client.post("/providers/desk/pause", json={"for": "1m"}).json()
        answers = [
            client.get("/events").json(),
            client.get(f"/events/{event_id}").json(),
            client.get("/deliveries").json(),
            client.get("/providers").json(),
            paused,
        ]
        client.post("/providers/desk/resume")
    found = times_in(answers)
    assert len(found) >= 8  # received_at, an attempt's at, the pause's since and until, ...
    assert all(t is None or (isinstance(t, str) and ISO_UTC.fullmatch(t)) for t in found), found


def test_without_an_admin_token_there_is_no_admin_at_all(tmp_path, desk):
    root = tree(tmp_path, desk.url)
    with running_server(
        rules=root / "rules",
        templates=root / "templates",
        db=f"sqlite:///{tmp_path / 'bridge.db'}",
        env={"BRIDGE_ADMIN_TOKEN": "", "DESK_TOKEN": "x", "SHOP_TOKEN": "y"},
        log=tmp_path / "server.log",
    ) as url:
        for path in ("/admin", "/admin/api/events", "/admin/login"):
            response = httpx.get(url + path, headers={"Authorization": "Bearer x"})
            assert response.status_code == 404
            assert response.json() == {"error": "not_found"}
