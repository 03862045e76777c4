"""The README's path, end to end: the example configuration, a real server, the CLI."""

from __future__ import annotations

import hmac
import json
import shutil
import socket
import time

import httpx
import pytest

from bridge.cli import main
from tests.helpers import EXAMPLE, poll, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("quickstart")
    db = f"sqlite:///{tmp / 'bridge.db'}"
    with running_server(
        rules=EXAMPLE / "rules", templates=EXAMPLE / "templates", db=db, log=tmp / "server.log"
    ) as url:
        yield url, db, tmp / "server.log"


def cli_json(capsys, *args):
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def post_contact(url, **fields):
    return httpx.post(
        f"{url}/hooks/contact-form",
        data={
            "name": "Ana Lima",
            "email": "ana@example.com",
            "message": "Where is my order?",
            **fields,
        },
        headers={"X-Form-Token": "quickstart-token"},
    )


def test_the_readme_curl_becomes_a_done_ticket(server, capsys):
    url, db, _ = server
    # exactly the README's first webhook: no phone, no subject, no submission id
    response = httpx.post(
        f"{url}/hooks/contact-form",
        data={"name": "Ana Lima", "email": "ana@example.com", "message": "Where is my order?"},
        headers={"X-Form-Token": "quickstart-token"},
    )
    assert response.status_code == 202
    event_id = response.json()["event_id"]
    detail = poll(
        lambda: (
            (d := cli_json(capsys, "show", event_id, "--db", db, "--json"))["status"] != "accepted"
            and d
        ),
        what="the event to be routed and delivered",
    )
    assert detail["status"] == "done", detail["deliveries"]
    assert detail["deliveries"][0]["action"]["contact"] == {
        "name": "Ana Lima",
        "email": "ana@example.com",
    }


def test_a_form_post_becomes_a_done_ticket(server, capsys):
    url, db, _ = server
    response = post_contact(url, submission_id="sub-e2e-1", phone="+56 9 6123 4567")
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    assert response.json() == {"event_id": event_id, "status": "accepted"}

    def done():
        events = cli_json(capsys, "events", "--db", db, "--json")
        return next((e for e in events if e["id"] == event_id and e["status"] == "done"), None)

    event = poll(done, timeout=10, what="the event to be done")
    assert event["deliveries"] == {"done": 1}
    assert event["matched_rules"] == ["contact-form-ticket"]

    detail = cli_json(capsys, "show", event_id, "--db", db, "--json")
    (delivery,) = detail["deliveries"]
    ticket = delivery["action"]
    assert delivery["status"] == "done" and delivery["attempts"] == 1
    assert ticket["contact"] == {
        "name": "Ana Lima",
        "email": "ana@example.com",
        "phone": "+56961234567",
    }
    assert ticket["subject"] == "Website: a message from the contact form"
    assert ticket["message"]["text"].startswith("Where is my order?")
    assert ticket["correlate"] == "contact:ana@example.com"
    assert detail["headers"]["x-form-token"] == "[redacted]"
    assert "quickstart-token" not in json.dumps(detail)


def test_a_duplicate_is_answered_200_and_creates_nothing(server, capsys):
    url, db, _ = server
    before = len(cli_json(capsys, "events", "--db", db, "--json", "--limit", "500"))
    first = post_contact(url, submission_id="sub-dup")
    second = post_contact(url, submission_id="sub-dup")
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json() == {"event_id": first.json()["event_id"], "status": "duplicate"}
    events = cli_json(capsys, "events", "--db", db, "--json", "--limit", "500")
    assert len(events) == before + 1  # the duplicate stored nothing
    assert [e["id"] for e in events].count(first.json()["event_id"]) == 1


def test_wrong_token_is_401_with_the_reason(server):
    url, _, _ = server
    response = httpx.post(
        f"{url}/hooks/contact-form", data={"email": "a@b.c"}, headers={"X-Form-Token": "nope"}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "signature_invalid", "detail": "token did not match"}
    missing = httpx.post(f"{url}/hooks/contact-form", data={"email": "a@b.c"})
    assert missing.json()["detail"] == "missing header x-form-token"


STRIPE = "/hooks/stripe"
STRIPE_SECRET = "whsec_quickstart_secret"


def stripe_headers(body: bytes) -> dict[str, str]:
    """Headers Stripe would send with `body`, signed now with the example's secret."""
    t = str(int(time.time()))
    digest = hmac.new(STRIPE_SECRET.encode(), f"{t}.".encode() + body, "sha256").hexdigest()
    return {"Content-Type": "application/json", "Stripe-Signature": f"t={t},v1={digest}"}


@pytest.mark.parametrize(
    ("content", "content_type", "status", "error"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b'{"id": "evt_\xff"}', "application/json", 400, "invalid_utf8"),
        (b"a,b,c", "text/csv", 415, "unsupported_media_type"),
        (b"[" * 100 + b"]" * 100, "application/json", 400, "too_deep"),
    ],
)
def test_bad_bodies_get_a_clear_4xx(server, content, content_type, status, error):
    url, _, _ = server
    headers = {**stripe_headers(content), "Content-Type": content_type}
    response = httpx.post(url + STRIPE, content=content, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["detail"]


def test_unknown_source_and_wrong_method(server):
    url, _, _ = server
    unknown = httpx.post(f"{url}/hooks/nobody", json={})
    assert unknown.status_code == 404 and unknown.json() == {"error": "unknown_source"}
    get = httpx.get(f"{url}/hooks/stripe")
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}


def _raw_exchange(url: str, head: bytes, chunks: list[bytes]) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and closed before taking it all: that is the point
        reply = b""
        while b"\r\n\r\n" not in reply or b"}" not in reply:  # the head and the JSON body
            try:
                data = sock.recv(4096)
            except OSError:
                break
            if not data:
                break
            reply += data
        return reply


def test_body_over_max_body_is_413_before_it_is_read(server):
    url, _, _ = server
    # a declared 50 MB body: refused from the header alone, nothing of the body sent
    declared = (
        b"POST " + STRIPE.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 52428800\r\n\r\n"
    )
    assert _raw_exchange(url, declared, []).startswith(b"HTTP/1.1 413")
    # a chunked body with no length: refused once the stream passes the limit
    chunked = (
        b"POST " + STRIPE.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * 65536
    # 17 x 64 KiB passes the 1 MiB limit; the closing chunk is never sent, so a server that
    # waited for the whole body would hang here instead of answering
    chunks = [b"10000\r\n" + piece + b"\r\n"] * 17
    reply = _raw_exchange(url, chunked, chunks)
    assert reply.startswith(b"HTTP/1.1 413")
    assert b'"body_too_large"' in reply


def test_stripe_dispute_lifecycle_and_unmatched(server, capsys):
    url, db, _ = server
    samples = EXAMPLE / "rules" / "samples" / "stripe"
    dispute = (samples / "dispute-created.json").read_bytes()
    created = httpx.post(url + STRIPE, content=dispute, headers=stripe_headers(dispute))
    assert created.status_code == 202
    payment = (samples / "payment-succeeded.json").read_bytes()
    other = httpx.post(url + STRIPE, content=payment, headers=stripe_headers(payment))
    assert other.status_code == 202
    # Stripe retries with a fresh signature: the preset's dedupe key (body.id) holds
    again = httpx.post(url + STRIPE, content=dispute, headers=stripe_headers(dispute))
    assert again.status_code == 200
    assert again.json() == {"event_id": created.json()["event_id"], "status": "duplicate"}
    forged = httpx.post(url + STRIPE, content=dispute + b" ", headers=stripe_headers(dispute))
    assert forged.status_code == 401
    assert forged.json() == {"error": "signature_invalid", "detail": "no signature matched"}

    def status(event_id, wanted):
        return cli_json(capsys, "show", event_id, "--db", db, "--json")["status"] == wanted

    poll(lambda: status(created.json()["event_id"], "done"), what="the dispute ticket")
    poll(lambda: status(other.json()["event_id"], "unmatched"), what="the unmatched event")
    detail = cli_json(capsys, "show", created.json()["event_id"], "--db", db, "--json")
    ticket = detail["deliveries"][0]["action"]
    assert ticket["metadata"]["amount"] == "CLP4,200"
    assert ticket["correlate"] == "stripe:ch_3QfxTest0000000001"


def test_server_log_is_json_and_has_no_secret(server):
    _, _, log = server
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("action") == "receive" and line.get("status") == 202 for line in lines)
    assert any(
        line.get("action") == "attempt" and line.get("outcome") == "success" for line in lines
    )
    assert "quickstart-token" not in log.read_text()
    assert STRIPE_SECRET not in log.read_text()


def test_copy_of_example_config_checks_clean(tmp_path, capsys):
    shutil.copytree(EXAMPLE / "rules", tmp_path / "rules")
    assert (
        main(
            ["check", "--rules", str(tmp_path / "rules"), "--templates", str(EXAMPLE / "templates")]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "dispute-created.json: stripe-dispute-opened" in out
    assert "payment-succeeded.json: no rule (unmatched)" in out
