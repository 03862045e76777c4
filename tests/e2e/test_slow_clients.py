"""Slow and stalled clients against the real server (DESIGN §8): a body that does not arrive
is answered 408 and its connection closed; beyond `max_in_flight` requests are answered 503
with Retry-After at once; hundreds of stalled clients leave normal senders answered."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import yaml

from tests.helpers import running_server, write_tree

BOUND = 20.0  # seconds any answer here may take, far above body_timeout


def _config(tmp_path: Path, **defaults: object) -> dict[str, object]:
    document = {
        "defaults": defaults,
        "providers": {"audit": {"type": "log"}},
        "sources": {"form": {"verify": {"type": "none"}}},
        "rules": [
            {
                "name": "all",
                "source": "form",
                "action": "create_ticket",
                "provider": "audit",
                "ticket": {"subject": "x", "message": {"text": "y"}},
            }
        ],
    }
    write_tree(tmp_path, {"rules/main.yaml": yaml.safe_dump(document), "templates/.keep": ""})
    return {
        "rules": tmp_path / "rules",
        "templates": tmp_path / "templates",
        "db": f"sqlite:///{tmp_path / 'bridge.db'}",
        "log": tmp_path / "serve.log",
    }


def _address(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").partition(":")
    return host, int(port)


def _stall(
    url: str, path: str = "/hooks/form", content_type: str = "application/json"
) -> socket.socket:
    """A client that declares 1,000 bytes of body, sends 10 and says nothing more."""
    connection = socket.create_connection(_address(url), timeout=BOUND)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
        "Content-Length: 1000\r\n\r\n"
    )
    connection.sendall(head.encode() + b'{"a": "bcd')
    return connection


def _answer(connection: socket.socket) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, headers, body, closed after it) of the one answer on `connection`."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", 0)):
        body += connection.recv(65536)
    closed = connection.recv(1) == b""
    return int(status_line.split()[1]), headers, body, closed


@contextlib.contextmanager
def _stalled(url: str, count: int) -> Iterator[list[socket.socket]]:
    connections = [_stall(url) for _ in range(count)]
    try:
        yield connections
    finally:
        for connection in connections:
            connection.close()


def test_a_body_that_stalls_is_answered_408_and_its_connection_closed(tmp_path):
    admin = {"BRIDGE_ADMIN_TOKEN": "admin-token-for-the-test"}
    with running_server(**_config(tmp_path, body_timeout="1s"), env=admin) as url:
        started = time.monotonic()
        with _stalled(url, 1) as (connection,):
            status, headers, body, closed = _answer(connection)
        assert status == 408 and closed and headers["connection"] == "close"
        assert json.loads(body) == {
            "error": "body_timeout",
            "detail": "the body did not arrive within 1 s",
        }
        assert time.monotonic() - started < BOUND
        # the admin's login form, read by Starlette, is held to the same deadline
        login = _stall(url, "/admin/login", "application/x-www-form-urlencoded")
        with contextlib.closing(login):
            status, _, body, closed = _answer(login)
        assert (status, closed) == (408, True) and json.loads(body)["error"] == "body_timeout"
        # nothing was stored, and the server answers as before
        assert httpx.post(f"{url}/hooks/form", json={"a": 1}).status_code == 202


def test_beyond_max_in_flight_a_request_is_answered_503_with_retry_after_at_once(tmp_path):
    with running_server(**_config(tmp_path, max_in_flight=5, body_timeout="3s")) as url:
        with _stalled(url, 5):
            # the five stalled requests are in flight; poll until the server has them all
            deadline = time.monotonic() + BOUND
            while True:
                refused = httpx.post(f"{url}/hooks/form", json={"a": 1}, timeout=BOUND)
                if refused.status_code == 503 or time.monotonic() > deadline:
                    break
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"] == "overloaded"
            assert "more than 5 requests" in refused.json()["detail"]
        # once the stalled ones are gone (closed by their clients), requests are let in again
        deadline = time.monotonic() + BOUND
        while (answer := httpx.post(f"{url}/hooks/form", json={"a": 2})).status_code == 503:
            assert time.monotonic() < deadline, "still refused after the stalls ended"
        assert answer.status_code == 202


def test_four_hundred_stalled_clients_leave_normal_senders_answered(tmp_path):
    """Holds the defaults (a cap of 1,000 in flight) against 400 slow clients; how much they
    slow normal senders is measured in bench/ (slow), not timed here."""
    with running_server(**_config(tmp_path)) as url:  # defaults: 10 s, 1,000 in flight
        with _stalled(url, 400), httpx.Client(base_url=url, timeout=BOUND) as client:

            def send(number: int) -> int:
                return client.post("/hooks/form", json={"n": number}).status_code

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(send, range(200)))
        assert statuses == [202] * 200
