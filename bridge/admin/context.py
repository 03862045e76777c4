"""What the admin API and pages share: the service, the store, auth and its failed attempts,
the clock, a way to wake the worker, reading query parameters, and answering JSON with every
secret masked."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bridge.admin.auth import AdminAuth
from bridge.admin.throttle import FailedLogins
from bridge.records import EventStatus
from bridge.redaction import mask
from bridge.reload import Reloaded
from bridge.service import Service
from bridge.store.base import Store
from bridge.views import hold_json


class BadParameter(Exception):
    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


@dataclass(kw_only=True)
class AdminContext:
    service: Service  # replaced by use() when the configuration is reloaded
    store: Store
    auth: AdminAuth
    clock: Callable[[], float]
    wake: Callable[[], None]  # the in-process worker, so a retry goes at once
    attempts: FailedLogins = field(default_factory=FailedLogins)
    reload: Callable[[], Awaitable[Reloaded]] | None = None  # POST /admin/api/reload

    def use(self, service: Service) -> None:
        self.service = service

    def client(self, request: Request) -> str:
        """The address failed authentications are counted against."""
        peer = request.client.host if request.client else None
        return self.service.proxies.client_address(request.headers, peer)

    @property
    def secrets(self) -> frozenset[str]:
        return self.service.config.secrets | {self.auth.token}

    def json(
        self, data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None
    ) -> Response:
        text = mask(json.dumps(data, ensure_ascii=False), self.secrets)
        return Response(text, status_code=status, media_type="application/json", headers=headers)

    def not_found(self, what: str) -> Response:
        return self.json({"error": "not_found", "detail": f"no such {what}"}, 404)

    async def providers(self) -> list[dict[str, Any]]:
        """Every configured provider with its state (active, paused, circuit_open) and its
        deliveries by status."""
        now = self.clock()
        holds = await self.store.provider_holds()
        stats = await self.store.queue_stats()
        found = []
        for name, config in sorted(self.service.config.providers.items()):
            hold = holds.get(name)
            live = hold if hold is not None and hold.until > now else None
            found.append(
                {
                    "name": name,
                    "type": config.type,
                    **hold_json(live),
                    "deliveries": {
                        status.value: count
                        for (provider, status), count in sorted(stats.deliveries.items())
                        if provider == name
                    },
                }
            )
        return found


def int_param(params: Mapping[str, str], name: str, *, default: int, high: int) -> int:
    text = params.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadParameter(name, "not a whole number") from None
    if not 1 <= value <= high:
        raise BadParameter(name, f"must be between 1 and {high}")
    return value


def time_param(params: Mapping[str, str], name: str) -> float | None:
    """An ISO 8601 time (2026-11-21T10:00:00Z) or epoch seconds."""
    text = params.get(name)
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadParameter(name, "expected an ISO 8601 time or epoch seconds") from None
    if when.tzinfo is None:
        raise BadParameter(name, "give the time zone (2026-11-21T10:00:00Z)")
    return when.timestamp()


def event_filters(params: Mapping[str, str]) -> dict[str, Any]:
    """list_events' keyword arguments from a query string; BadParameter naming what is wrong."""
    status = params.get("status") or None
    if status is not None and status not in EventStatus.__members__.values():
        raise BadParameter("status", f"one of {', '.join(s.value for s in EventStatus)}")
    return {
        "source": params.get("source") or None,
        "status": EventStatus(status) if status else None,
        "since": time_param(params, "since"),
        "until": time_param(params, "until"),
        "limit": int_param(params, "limit", default=50, high=500),
        "before": params.get("before") or None,
    }
