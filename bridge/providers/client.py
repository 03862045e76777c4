"""The HTTP client the providers are built with: one httpx.AsyncClient whose connections are
spread over several small pools.

httpcore's pool looks through all of its connections for every request, and polls each idle
one's socket, so one pool of many connections spends more on finding a connection than on the
request (profiled: a third of the worker's time with 32 in flight; with 4 pools of 25, still 19
socket polls a request); many small pools, taken in turn, do not (bench e2e, 10,000 events at
concurrency 32: 509 events/s over 4 pools, 579 over 8, 635 over 16, 652 over 32).

What a helpdesk answers is read up to MAX_RESPONSE bytes and no further (the rest is dropped
with the connection), and redirects are never followed: a provider's answer cannot make the
bridge hold a large body or call anyone else.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence

import httpx

POOLS = 32
CONNECTIONS = 4  # per pool: 128 in all
MAX_RESPONSE = 1024 * 1024  # bytes of a provider's answer that are read


class SpreadTransport(httpx.AsyncBaseTransport):
    """Sends each request through the next of its transports, in turn."""

    def __init__(self, pools: Sequence[httpx.AsyncBaseTransport]) -> None:
        if not pools:
            raise ValueError("no transport to spread over")
        self._pools = tuple(pools)
        self._turn = itertools.cycle(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await next(self._turn).handle_async_request(request)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_Capped(response.stream, MAX_RESPONSE),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _Capped(httpx.AsyncByteStream):
    """The first `limit` bytes of `stream`; closing it then drops the connection's rest."""

    def __init__(self, stream: httpx.AsyncByteStream | httpx.SyncByteStream, limit: int) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        left = self._limit
        async for chunk in self._stream:
            if len(chunk) >= left:
                if left:
                    yield chunk[:left]
                break
            left -= len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


def delivery_client() -> httpx.AsyncClient:
    """The client `serve` and `worker` deliver through."""
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    tls = httpx.create_ssl_context()  # one for all: each loads the CA bundle (~0.7 MB)
    pools = [httpx.AsyncHTTPTransport(limits=limits, verify=tls) for _ in range(POOLS)]
    return httpx.AsyncClient(transport=SpreadTransport(pools), follow_redirects=False)
