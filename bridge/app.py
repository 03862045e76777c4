"""build_app(...) -> the service's ASGI app: the Gate (requests in flight, body deadlines)
before the receiver, and a Starlette app for health, metrics, the admin and the worker's
lifetime.

    /hooks/...   Receiver (an ASGI app of its own: the hot path meets no router)
    anything else, and the lifespan   Starlette
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import httpx
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.admin import AdminAuth, AdminContext, admin_mount
from bridge.delivery.worker import Worker
from bridge.exceptions import RejectedRequest, StoreError
from bridge.gate import Gate
from bridge.metrics import Metrics
from bridge.receiver import Receiver
from bridge.reload import Reloader, reload_on_sighup
from bridge.service import Service
from bridge.store.base import Store

log = logging.getLogger("bridge.app")


async def _rejected(request: Request, exc: Exception) -> Response:
    """A request the Gate refused while an app read its body (408)."""
    assert isinstance(exc, RejectedRequest)
    headers = {"connection": "close"} if exc.closes else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    error = codes.get(exc.status_code, "http_error")
    return JSONResponse({"error": error}, status_code=exc.status_code, headers=exc.headers)


def build_app(
    *,
    service: Service,
    store: Store,
    worker: Worker | None,
    client: httpx.AsyncClient | None = None,
    admin_token: str | None = None,
    metrics: Metrics | None = None,
) -> ASGIApp:
    """The service's ASGI app. It opens the store on startup and runs the worker (when given)
    beside the receiver; on shutdown the worker gets defaults.shutdown_grace to finish, then
    the store and the providers' HTTP client are closed. With `admin_token`, /admin serves
    the operator's API and pages (bridge.admin); without it /admin does not exist (404).
    The receiver counts into `metrics` (by default the worker's, so that GET /metrics shows
    both; give the worker and the app the same one)."""
    config = service.config
    if metrics is None:
        metrics = (
            worker.metrics
            if worker is not None
            else Metrics(sources=config.sources, providers=config.providers)
        )
    receiver = Receiver(
        sources=service.source_for_path(),
        store=store,
        dedupe_window=service.config.defaults.dedupe_window,
        proxies=service.proxies,
        on_stored=worker.wake if worker else (lambda: None),
        metrics=metrics,
    )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await store.ping()
        except StoreError:
            return JSONResponse({"status": "unavailable", "store": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics_text(request: Request) -> Response:
        return Response(await metrics.exposition(store), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        task = asyncio.create_task(worker.run()) if worker else None
        try:
            with reload_on_sighup(reloader):
                yield
        finally:
            if worker and task:
                await worker.stop()
                await task
            await store.close()
            if client is not None:
                await client.aclose()

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_text, methods=["GET"]),
    ]
    users: list[Callable[[Service], None]] = [receiver.use]
    if worker is not None:
        users.append(worker.use)
    reloader = Reloader(service, client=client, users=users) if client is not None else None
    if admin_token:
        ctx = AdminContext(
            service=service,
            store=store,
            auth=AdminAuth(admin_token),
            clock=time.time,
            wake=worker.wake if worker else (lambda: None),
            reload=reloader.reload if reloader else None,
        )
        users.append(ctx.use)
        routes.append(admin_mount(ctx))
    rest = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, RejectedRequest: _rejected},
    )
    defaults = config.defaults
    gate = Gate(
        Front(receiver, rest),
        max_in_flight=defaults.max_in_flight,
        body_timeout=defaults.body_timeout,
    )
    users.append(gate.use)
    if worker is not None:
        worker.defer_to(gate.quiet)  # the receiver first: a burst's answers before its routing
    return gate


class Front:
    """Sends what the receiver answers (every method: 404 for an unknown source, 405 for a
    known one) to it, and everything else, the lifespan included, to `rest`."""

    def __init__(self, receiver: Receiver, rest: ASGIApp) -> None:
        self.receiver = receiver
        self.rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.receiver.answers(scope["path"]):
            await self.receiver(scope, receive, send)
        else:
            await self.rest(scope, receive, send)
