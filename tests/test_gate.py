"""The gate's `idle`: set exactly while no request is in flight (the worker waits for it)."""

from __future__ import annotations

import asyncio

from bridge.gate import Gate


def test_idle_is_cleared_while_any_request_is_in_flight():
    async def go():
        release = asyncio.Event()
        entered = 0

        async def app(scope, receive, send):
            nonlocal entered
            entered += 1
            await release.wait()

        gate = Gate(app, max_in_flight=10, body_timeout=5)
        assert gate.idle.is_set()

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            pass

        scope = {"type": "http", "method": "POST", "path": "/hooks/x", "headers": []}
        requests = [asyncio.create_task(gate(scope, receive, send)) for _ in range(2)]
        while entered < 2:
            await asyncio.sleep(0)
        assert gate.in_flight == 2 and not gate.idle.is_set()
        release.set()
        await asyncio.gather(*requests)
        assert gate.in_flight == 0 and gate.idle.is_set()
        await gate({"type": "lifespan"}, receive, send)  # not a request: idle all along
        assert gate.idle.is_set()

    asyncio.run(go())
