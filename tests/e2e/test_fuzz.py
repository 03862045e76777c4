"""A fuzz campaign against the real server (DESIGN §8): Hypothesis writes raw HTTP requests
(methods, paths, headers, content types, bodies: invalid UTF-8, deep nesting, huge numbers,
truncated multipart, form text) and requests signed as every preset's sender signs them, then
forged, stale, replayed or stripped. Every one is answered, never with a 5xx, the server
stays up, and every event it stored reads back afterwards.

BRIDGE_FUZZ_EXAMPLES sets how many cases (default 5,000, some 20 s here);
`python -m bench --only fuzz` runs 10,000 and reads the answers' statuses from the file
BRIDGE_FUZZ_REPORT names.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import socket
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import yaml
from hypothesis import HealthCheck
from hypothesis import strategies as st

from bridge.sources.presets import PRESETS
from bridge.sources.signing import Outgoing, sender_request
from bridge.sources.verifiers import Verifier
from tests.helpers import running_server, write_tree

EXAMPLES = int(os.environ.get("BRIDGE_FUZZ_EXAMPLES", "5000"))
REPORT = os.environ.get("BRIDGE_FUZZ_REPORT")
SECRET = "fuzz-secret-0123456789abcdef"
TOKEN = "fuzz-admin-token-42"
STANDARD_SECRET = "whsec_" + base64.b64encode(b"fuzz-standard-webhooks-key").decode()
SECRET_OF = {"standard": "${STANDARD_SECRET}"}  # Standard Webhooks keys are whsec_ base64
SOURCES = {
    **{
        f"p-{name}": {
            "verify": {"preset": name, "secrets": [SECRET_OF.get(name, "${FUZZ_SECRET}")]}
        }
        for name in PRESETS
    },
    "form": {
        "verify": {"type": "token", "location": "form:token", "values": ["${FUZZ_SECRET}"]},
        "body": "form",
    },
    "upload": {"verify": {"type": "none"}, "body": "multipart"},
    "batch": {"verify": {"type": "none"}, "split": True, "dedupe_key": "body.id"},
    "strict": {"verify": {"type": "none"}, "schema": "order.schema.json"},
}
SCHEMA = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
IDS = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    document = {
        # the campaign's own requests to /admin lock 127.0.0.1 out; the read-back afterwards
        # comes through "a proxy" from another address
        "defaults": {"max_body": "256KiB", "body_timeout": "5s", "trusted_proxies": ["127.0.0.1"]},
        "providers": {"audit": {"type": "log"}},
        "sources": SOURCES,
        "rules": [
            {
                "name": "everything",
                "source": sorted(SOURCES),
                "action": "create_ticket",
                "provider": "audit",
                "ticket": {"subject": "{{ body.id | default('?') }}", "message": {"text": "x"}},
            }
        ],
    }
    write_tree(
        root,
        {
            "rules/main.yaml": yaml.safe_dump(document, sort_keys=False),
            "rules/order.schema.json": json.dumps(SCHEMA),
            "templates/.keep": "",
        },
    )
    env = {"FUZZ_SECRET": SECRET, "STANDARD_SECRET": STANDARD_SECRET, "BRIDGE_ADMIN_TOKEN": TOKEN}
    with running_server(
        rules=root / "rules",
        templates=root / "templates",
        db=f"sqlite:///{root / 'bridge.db'}",
        env=env,
        log=root / "serve.log",
    ) as url:
        yield url, _verifiers(root, env)


def _verifiers(root: Path, env: dict[str, str]) -> dict[str, Verifier]:
    from bridge.service import load_service

    service = load_service(root / "rules", root / "templates", env, httpx.AsyncClient())
    return {name: source.verifier for name, source in service.sources.items()}


# -- what is sent ----------------------------------------------------------------------------

_PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
_HEADER_NAME = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-0123456789"), min_size=1)
_HEADER_VALUE = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    kind = draw(
        st.sampled_from(
            [
                "json",
                "object",
                "bytes",
                "utf8",
                "deep",
                "number",
                "multipart",
                "form",
                "huge",
                "empty",
            ]
        )
    )
    if kind == "json":
        return json.dumps(draw(_JSON)).encode()
    if kind == "huge":  # about the fixture's max_body (256 KiB)
        return b'{"id": "' + b"x" * draw(st.integers(250 * 1024, 260 * 1024)) + b'"}'
    if kind == "object":
        return json.dumps({"id": draw(st.text(max_size=12)), "n": draw(_JSON)}).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "utf8":  # text with a byte that is not UTF-8 in it
        return b'{"id": "' + draw(st.binary(max_size=20)) + b'\xff\xfe"}'
    if kind == "deep":
        depth = draw(st.integers(min_value=60, max_value=120_000))
        return b"[" * depth + b"]" * draw(st.sampled_from([depth, 0, depth // 2]))
    if kind == "number":
        digits = draw(st.integers(min_value=300, max_value=20_000))
        return b'{"id": "n", "n": ' + b"9" * digits + draw(st.sampled_from([b"}", b".5e999}"]))
    if kind == "multipart":
        whole = (
            b'--xyz\r\nContent-Disposition: form-data; name="id"\r\n\r\nabc\r\n'
            b'--xyz\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\nhello\r\n--xyz--\r\n"
        )
        return whole[: draw(st.integers(min_value=0, max_value=len(whole)))]
    if kind == "form":
        return urllib.parse.urlencode(
            draw(st.dictionaries(st.text(max_size=8), st.text(max_size=8)))
        ).encode()
    return b""


_CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=latin-1",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "multipart/form-data",
        "text/plain",
        "application/xml",
        "",
    ]
)


@st.composite
def _raw(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes]:
    method = draw(
        st.sampled_from(["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "BREW"])
    )
    path = draw(
        st.sampled_from([f"/hooks/{name}" for name in SOURCES] + ["/hooks/nope", "/hooks/", "/"])
        | st.sampled_from(["/admin/api/events", "/admin/login", "/healthz", "/metrics"])
        | st.text(_PRINTABLE, max_size=40).map(
            lambda tail: "/" + urllib.parse.quote(tail, safe="/?=&%")
        )
    )
    headers = draw(st.dictionaries(_HEADER_NAME, _HEADER_VALUE, max_size=6))
    content_type = draw(_CONTENT_TYPES)
    if content_type:
        headers["content-type"] = content_type
    return method, path, headers, draw(_bodies())


@st.composite
def _signed(draw: st.DrawFn, verifiers: dict[str, Verifier]) -> tuple[list[Outgoing], str]:
    """One request as a source's sender signs it, then forged, stale, stripped or replayed."""
    name = draw(st.sampled_from(sorted(verifiers)))
    body = json.dumps(
        {
            "id": f"e{next(IDS)}",
            "eventId": next(IDS),
            "event_id": f"x{next(IDS)}",
            "data": draw(_JSON),
        }
    ).encode()
    if name == "form":
        body = urllib.parse.urlencode({"token": SECRET, "id": f"f{next(IDS)}"}).encode()
    if name == "upload":
        body = draw(_bodies())
    mutation = draw(st.sampled_from(["none", "forge", "stale", "strip", "replay", "body"]))
    now = time.time() - (2 * 86400 if mutation == "stale" else 0)
    request = sender_request(
        verifiers[name],
        url=f"http://127.0.0.1/hooks/{name}?data.id=7",
        body=body,
        headers={"x-request-id": "r-1"}
        | ({"content-type": "multipart/form-data; boundary=xyz"} if name == "upload" else {}),
        body_setting=SOURCES[name].get("body"),
        dedupe_key=None,
        now=now,
        new_id=lambda: f"id-{next(IDS)}",
    )
    secret_headers = [h for h in request.headers if "signature" in h or h == "authorization"]
    headers = dict(request.headers)
    if mutation == "forge":
        headers = {k: (v[:-2] + "zz" if k in secret_headers else v) for k, v in headers.items()}
    if mutation == "strip":
        headers = {k: v for k, v in headers.items() if k not in secret_headers}
    if mutation == "body":
        body = body + b" "
    sent = Outgoing(
        url=request.url, headers=headers, body=body if mutation == "body" else request.body
    )
    return ([sent, sent] if mutation == "replay" else [sent]), mutation


# -- sending ---------------------------------------------------------------------------------


def _send(
    url: str, method: str, target: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    """Send one request over its own connection; the answer's status and body."""
    host, _, port = url.removeprefix("http://").partition(":")
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [
        f"{name}: {value}"
        for name, value in headers.items()
        if name not in ("host", "content-length", "connection")
    ]
    lines.append(f"Content-Length: {len(body)}")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        answer = b""
        while True:  # Connection: close: the server ends it, or resets it on a refused body
            try:
                chunk = connection.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 "), f"no answer to {method} {target}: {answer[:200]!r}"
    return int(answer.split(b" ", 2)[1]), answer.partition(b"\r\n\r\n")[2]


def _stored(status: int, body: bytes) -> list[str]:
    """The events an answer says were stored: one, or a split batch's (none for an empty
    batch, which is accepted too)."""
    if status != 202:
        return []
    answer = json.loads(body)
    return [answer["event_id"]] if "event_id" in answer else list(answer["event_ids"])


def _target(outgoing: Outgoing) -> str:
    parts = urllib.parse.urlsplit(outgoing.url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_no_request_gets_a_5xx_and_every_stored_event_reads_back(server):
    url, verifiers = server
    statuses: Counter[int] = Counter()
    stored: list[str] = []  # the events the 202 answers name

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @hypothesis.given(case=st.one_of(_raw(), _signed(verifiers)))
    def campaign(case: Any) -> None:
        if isinstance(case[0], list):
            sent, _ = case
            for outgoing in sent:
                status, answer = _send(
                    url, "POST", _target(outgoing), dict(outgoing.headers), outgoing.body
                )
                statuses[status] += 1
                assert status < 500, (outgoing, status)
                stored.extend(_stored(status, answer))
        else:
            method, path, headers, body = case
            status, answer = _send(url, method, path, headers, body)
            statuses[status] += 1
            assert status < 500, (method, path, headers, body[:200], status)
            stored.extend(_stored(status, answer))

    started = time.monotonic()
    try:
        campaign()
    finally:
        if REPORT:
            seconds = time.monotonic() - started
            Path(REPORT).write_text(json.dumps({"statuses": statuses, "seconds": seconds}))
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert statuses[202] > 0 and sum(statuses.values()) >= EXAMPLES, statuses
    # every event stored reads back whole through the admin API
    admin = httpx.Client(
        base_url=f"{url}/admin/api",
        headers={"Authorization": f"Bearer {TOKEN}", "X-Forwarded-For": "192.0.2.200"},
    )
    with admin:
        ids: list[str] = []
        before = None
        while True:
            page = admin.get(
                "/events", params={"limit": 200, **({"before": before} if before else {})}
            ).json()
            ids += [event["id"] for event in page["events"]]
            before = page.get("next_before")
            if not before:
                break
        # an empty split batch is a 202 that stores nothing: count what the answers named
        assert stored and set(stored) <= set(ids), set(stored) - set(ids)
        for event_id in ids:
            detail = admin.get(f"/events/{event_id}")
            assert detail.status_code == 200 and detail.json()["id"] == event_id
