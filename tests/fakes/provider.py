"""A fake helpdesk: a Starlette app that records every request and answers from a script.

Run it with `FakeProvider.running()`: a real uvicorn server on a free 127.0.0.1 port, in a
background thread, for end-to-end tests of the worker's HTTP deliveries.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers import serving


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclass
class FakeProvider:
    requests: list[Received] = field(default_factory=list)
    # answers to give, in order; when empty, 201 {"id": "T-<n>"}
    script: list[tuple[int, dict[str, str], Any]] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_next(
        self, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.script.append((status, headers or {}, body))

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self.requests.append(
                Received(request.method, request.url.path, dict(request.headers), body)
            )
            number = len(self.requests)
            scripted = self.script.pop(0) if self.script else None
        if scripted is None:
            return JSONResponse({"id": f"T-{number}"}, status_code=201)
        status, headers, payload = scripted
        return JSONResponse(
            payload if payload is not None else {}, status_code=status, headers=headers
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeProvider]:
        app = Starlette(
            routes=[
                Route(
                    "/{path:path}", self._handle, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]
                )
            ]
        )
        with serving(app, what="the fake provider") as url:
            self.url = url
            yield self
