"""The fake helpdesk of the e2e scenario: answers every POST 201 with an id and counts calls.

It records each call's arrival (time.time()) and, where the request carries them, the lag
from the event's receipt (`X-Received-At`, ISO 8601, the product's `event.received_at`) and
from the sender's `X-Sent-At` (epoch seconds) to the call.

    python -m bench.helpdesk --port P
    GET /stats           {"count", "first", "last", "received_lag_ms": [...], "sent_lag_ms": [...]}
    GET /stats?arrivals=1  the same plus "arrivals": [...]
    POST /reset
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.yardsticks import run_server


@dataclass
class Calls:
    arrivals: list[float] = field(default_factory=list)
    received_lag_ms: list[float] = field(default_factory=list)
    sent_lag_ms: list[float] = field(default_factory=list)


def helpdesk_app() -> Starlette:
    calls = Calls()

    async def ticket(request: Request) -> Response:
        now = time.time()
        await request.body()
        calls.arrivals.append(now)
        received = request.headers.get("x-received-at")
        if received:
            at = dt.datetime.fromisoformat(received.replace("Z", "+00:00")).timestamp()
            calls.received_lag_ms.append((now - at) * 1000)
        sent = request.headers.get("x-sent-at")
        if sent:
            calls.sent_lag_ms.append((now - float(sent)) * 1000)
        return JSONResponse({"id": f"T-{len(calls.arrivals)}"}, status_code=201)

    async def stats(request: Request) -> Response:
        data: dict[str, object] = {
            "count": len(calls.arrivals),
            "first": calls.arrivals[0] if calls.arrivals else None,
            "last": calls.arrivals[-1] if calls.arrivals else None,
            "received_lag_ms": calls.received_lag_ms,
            "sent_lag_ms": calls.sent_lag_ms,
        }
        if request.query_params.get("arrivals"):
            data["arrivals"] = calls.arrivals
        return JSONResponse(data)

    async def reset(request: Request) -> Response:
        calls.arrivals.clear()
        calls.received_lag_ms.clear()
        calls.sent_lag_ms.clear()
        return Response(status_code=204)

    return Starlette(
        routes=[
            Route("/stats", stats, methods=["GET"]),
            Route("/healthz", stats, methods=["GET"]),
            Route("/reset", reset, methods=["POST"]),
            Route("/{path:path}", ticket, methods=["POST"]),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.helpdesk")
    parser.add_argument("--port", type=int, required=True)
    run_server(helpdesk_app(), port=parser.parse_args().port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
