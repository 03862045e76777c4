"""The yardsticks of DESIGN §7, each the limit of one part of the product on this stack.

- A: a bare Starlette app answering 202 at once.
- D: verifies the HMAC (GitHub style), parses the JSON and group-commits the raw body to
  SQLite (WAL, synchronous=NORMAL) before answering 202: the durable limit. Group commit:
  each request enqueues (body, future) for one writer thread, which commits whatever has
  accumulated in one transaction, then resolves those futures via loop.call_soon_threadsafe.
- D_full: D with synchronous=FULL (the product's default durability).
- E: one process that only POSTs the ticket JSON through pooled httpx clients as fast as it
  can (`post`): the delivery limit.

    python -m bench.yardsticks serve {A,D} --port P [--db PATH] [--synchronous normal|full]
    python -m bench.yardsticks post --url URL --body FILE --count N --clients C --connections K

Servers run under uvicorn with the product's settings: uvloop, httptools, no access log,
no server header, no proxy headers (what `ticketbridge serve` passes to uvicorn.run).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import queue
import sqlite3
import sys
import threading
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.payload import SECRET

HOOK = "/hooks/{source}"
_ACCEPTED = b'{"status":"accepted"}'


async def _healthz(request: Request) -> Response:
    return Response(b"ok")


def bare_app() -> Starlette:
    """A: 202 at once, the body not even read."""

    async def accept(request: Request) -> Response:
        return Response(_ACCEPTED, status_code=202, media_type="application/json")

    return Starlette(routes=[Route(HOOK, accept, methods=["POST"]), Route("/healthz", _healthz)])


Pending = tuple[bytes, str, asyncio.Future[None]]


class GroupCommitter:
    """One writer thread committing every queued body in one transaction."""

    def __init__(self, path: Path, *, synchronous: str) -> None:
        self._queue: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._path = path
        self._synchronous = synchronous.upper()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        threading.Thread(target=self._run, daemon=True, name="group-commit").start()

    async def commit(self, body: bytes, delivery: str) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((body, delivery, future))
        await future

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={self._synchronous}")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS events "
            "(id INTEGER PRIMARY KEY, delivery TEXT NOT NULL, raw BLOB NOT NULL)"
        )
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            connection.execute("BEGIN")
            connection.executemany(
                "INSERT INTO events (delivery, raw) VALUES (?, ?)",
                [(delivery, body) for body, delivery, _ in batch],
            )
            connection.execute("COMMIT")
            self.batches += 1
            futures = [future for _, _, future in batch]
            loop = self._loop
            if loop is not None:
                loop.call_soon_threadsafe(_resolve, futures)


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def durable_app(path: Path, *, synchronous: str, secret: bytes = SECRET.encode()) -> Starlette:
    """D (synchronous=normal) or D_full (full): verify, parse, group-commit, answer 202."""
    committer = GroupCommitter(path, synchronous=synchronous)

    async def accept(request: Request) -> Response:
        body = await request.body()
        expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        given = request.headers.get("x-hub-signature-256", "")
        if not hmac.compare_digest(expected, given):
            return Response(b'{"error":"signature_invalid"}', status_code=401)
        try:
            json.loads(body)
        except ValueError:
            return Response(b'{"error":"invalid_json"}', status_code=400)
        await committer.commit(body, request.headers.get("x-github-delivery", ""))
        return Response(_ACCEPTED, status_code=202, media_type="application/json")

    return Starlette(routes=[Route(HOOK, accept, methods=["POST"]), Route("/healthz", _healthz)])


def run_server(app: Starlette, *, port: int) -> None:
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )


# -- E: POST only ------------------------------------------------------------------------


async def post_only(
    url: str, *, body: bytes, count: int, clients: int, connections: int
) -> tuple[int, float]:
    """POST `body` `count` times through `clients` httpx clients of `connections` each, all
    connections busy; (2xx answers, seconds)."""
    import httpx

    pools = [
        httpx.AsyncClient(
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=30,
        )
        for _ in range(clients)
    ]
    numbers = iter(range(count))
    ok = 0
    headers = {"content-type": "application/json"}

    async def loop(client: httpx.AsyncClient) -> None:
        nonlocal ok
        for number in numbers:
            answer = await client.post(
                url, content=body, headers={**headers, "Idempotency-Key": f"dlv_e_{number}"}
            )
            ok += answer.is_success

    try:
        started = time.perf_counter()
        await asyncio.gather(*(loop(client) for client in pools for _ in range(connections)))
        return ok, time.perf_counter() - started
    finally:
        for client in pools:
            await client.aclose()


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.yardsticks")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve")
    serve.add_argument("kind", choices=["A", "D"])
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--db", type=Path)
    serve.add_argument("--synchronous", choices=["normal", "full"], default="normal")
    post = commands.add_parser("post")
    post.add_argument("--url", required=True)
    post.add_argument("--body", type=Path, required=True)
    post.add_argument("--count", type=int, required=True)
    post.add_argument("--clients", type=int, default=4)
    post.add_argument("--connections", type=int, default=8)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    if args.command == "serve":
        if args.kind == "A":
            run_server(bare_app(), port=args.port)
        else:
            if args.db is None:
                raise SystemExit("D needs --db")
            run_server(durable_app(args.db, synchronous=args.synchronous), port=args.port)
        return 0
    body = args.body.read_bytes()
    ok, seconds = asyncio.run(
        post_only(
            args.url,
            body=body,
            count=args.count,
            clients=args.clients,
            connections=args.connections,
        )
    )
    print(json.dumps({"ok": ok, "count": args.count, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
