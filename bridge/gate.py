"""What the service lets in, before any app sees a request: a cap on the requests in flight,
and a deadline for each request's body.

A request beyond `max_in_flight` is answered 503 at once, with `Retry-After`, and its
connection closed: the sender comes back later instead of waiting in a queue that only grows.
A body that has not all arrived `body_timeout` seconds after its request began is refused:
receive() raises RejectedRequest 408, which the receiver answers as it answers every
rejection (and the other apps through their exception handler), closing the connection, since
a client that stalled mid-body cannot be read on from. Slow clients so cost a connection each
for at most `body_timeout`, and never the requests of anyone else.

`quiet` is set while fewer than `busy_at` requests are in flight: in `serve`, the worker waits
for it before each step, so that a burst of webhooks is answered first and routed right after
(receiver first). A steady flow (a few requests in flight at a time) is not a burst: there the
worker keeps up with it, step by step, instead of falling behind.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.exceptions import RejectedRequest
from bridge.service import Service

CLOSE = (b"connection", b"close")
RETRY_AFTER_SECONDS = 1
BUSY_AT = 4  # requests in flight at once from which the receiver counts as busy (a burst)


class Gate:
    def __init__(
        self, app: ASGIApp, *, max_in_flight: int, body_timeout: float, busy_at: int = BUSY_AT
    ) -> None:
        if max_in_flight < 1 or body_timeout <= 0:
            raise ValueError("max_in_flight must be at least 1 and body_timeout positive")
        self.app = app
        self.max_in_flight = max_in_flight
        self.body_timeout = body_timeout
        self.in_flight = 0
        self.busy_at = busy_at
        self.quiet = asyncio.Event()
        self.quiet.set()

    def use(self, service: Service) -> None:
        """A reloaded configuration's limits, for the next request."""
        defaults = service.config.defaults
        self.max_in_flight, self.body_timeout = defaults.max_in_flight, defaults.body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            detail = f"more than {self.max_in_flight} requests at once; retry shortly"
            retry_after = (b"retry-after", str(RETRY_AFTER_SECONDS).encode())
            await send_json(
                send, 503, {"error": "overloaded", "detail": detail}, (retry_after, CLOSE)
            )
            return
        self.in_flight += 1
        if self.in_flight >= self.busy_at:
            self.quiet.clear()
        try:
            await self.app(scope, _by_deadline(receive, self.body_timeout), send)
        finally:
            self.in_flight -= 1
            if self.in_flight < self.busy_at:
                self.quiet.set()


def _by_deadline(receive: Receive, seconds: float) -> Receive:
    """`receive`, raising RejectedRequest 408 when the body is not all there `seconds` from
    now; once it is (or the client left), later calls wait as long as they like."""
    deadline = asyncio.get_running_loop().time() + seconds
    reading = True

    async def receive_by_deadline() -> Message:
        nonlocal reading
        if not reading:
            return await receive()
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            detail = f"the body did not arrive within {seconds:g} s"
            raise RejectedRequest(408, "body_timeout", detail) from None
        reading = message["type"] == "http.request" and message.get("more_body", False)
        return message

    return receive_by_deadline


async def send_json(
    send: Send,
    status: int,
    answer: Mapping[str, object],
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """A JSON answer, written as Starlette's JSONResponse writes it."""
    body = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = [
        (b"content-length", str(len(body)).encode("latin-1")),
        (b"content-type", b"application/json"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
