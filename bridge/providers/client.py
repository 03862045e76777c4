"""The HTTP client the providers are built with: one httpx.AsyncClient whose connections are
spread over several small pools.

httpcore's pool looks through all of its connections for every request, so one pool of many
connections spends more on finding a connection than on the request (profiled: a third of the
worker's time with 32 in flight); several small pools, taken in turn, do not.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import httpx

POOLS = 4
CONNECTIONS = 25  # per pool: 100 in all, httpx's own default


class SpreadTransport(httpx.AsyncBaseTransport):
    """Sends each request through the next of its transports, in turn."""

    def __init__(self, pools: Sequence[httpx.AsyncBaseTransport]) -> None:
        if not pools:
            raise ValueError("no transport to spread over")
        self._pools = tuple(pools)
        self._turn = itertools.cycle(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._turn).handle_async_request(request)

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


def delivery_client() -> httpx.AsyncClient:
    """The client `serve` and `worker` deliver through."""
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    pools = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(POOLS)]
    return httpx.AsyncClient(transport=SpreadTransport(pools))
