"""The providers' HTTP client: requests spread over several small connection pools."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bridge.providers.client import MAX_RESPONSE, POOLS, SpreadTransport, delivery_client


def test_requests_take_the_pools_in_turn() -> None:
    seen: list[str] = []

    def pool(name: str) -> httpx.MockTransport:
        def answer(request: httpx.Request) -> httpx.Response:
            seen.append(name)
            return httpx.Response(201, json={"id": name})

        return httpx.MockTransport(answer)

    async def go() -> list[int]:
        transport = SpreadTransport([pool("a"), pool("b"), pool("c")])
        async with httpx.AsyncClient(transport=transport) as client:
            answers = [await client.post("http://desk.test/tickets", json={}) for _ in range(7)]
        return [answer.status_code for answer in answers]

    assert asyncio.run(go()) == [201] * 7
    assert seen == ["a", "b", "c", "a", "b", "c", "a"]


def test_a_spread_needs_a_pool() -> None:
    with pytest.raises(ValueError, match="no transport"):
        SpreadTransport([])


def test_the_delivery_client_spreads_over_its_pools() -> None:
    client = delivery_client()
    transport = client._transport  # the one httpx sends through
    assert isinstance(transport, SpreadTransport)
    assert len(transport._pools) == POOLS
    # one TLS context for all of them: each would load the CA bundle again
    assert len({id(pool._pool._ssl_context) for pool in transport._pools}) == 1
    asyncio.run(client.aclose())


def _answering(body: bytes, status: int = 200, **headers: str) -> SpreadTransport:
    return SpreadTransport(
        [httpx.MockTransport(lambda request: httpx.Response(status, content=body, headers=headers))]
    )


def test_a_providers_answer_is_read_up_to_the_cap_and_no_further() -> None:
    async def go(size: int) -> int:
        async with httpx.AsyncClient(transport=_answering(b"x" * size)) as client:
            return len((await client.get("http://desk.test/")).content)

    assert asyncio.run(go(MAX_RESPONSE * 5)) == MAX_RESPONSE
    assert asyncio.run(go(1000)) == 1000


def test_the_delivery_client_follows_no_redirect() -> None:
    async def go() -> httpx.Response:
        transport = _answering(b"", 302, location="http://elsewhere.test/steal")
        async with httpx.AsyncClient(transport=transport) as plain:
            client = delivery_client()
            client._transport = plain._transport  # delivery_client's settings, a fake network
            async with client:
                return await client.post("http://desk.test/tickets", json={})

    answer = asyncio.run(go())
    assert answer.status_code == 302 and answer.url == "http://desk.test/tickets"
