"""The gate's `quiet`: set exactly while fewer than `busy_at` requests are in flight (in
`serve` the worker waits for it, so that a burst is answered before it is routed)."""

from __future__ import annotations

import asyncio

from bridge.gate import Gate


def test_quiet_is_cleared_while_busy_at_requests_or_more_are_in_flight():
    async def go():
        release = asyncio.Event()
        entered = 0

        async def app(scope, receive, send):
            nonlocal entered
            entered += 1
            await release.wait()

        gate = Gate(app, max_in_flight=10, body_timeout=5, busy_at=3)
        assert gate.quiet.is_set()

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            pass

        scope = {"type": "http", "method": "POST", "path": "/hooks/x", "headers": []}

        async def entered_by(count):
            for _ in range(1000):  # bounded: each request enters within a few loop turns
                if entered >= count:
                    return
                await asyncio.sleep(0)
            raise AssertionError(f"only {entered} of {count} requests reached the app")

        requests = [asyncio.create_task(gate(scope, receive, send)) for _ in range(2)]
        await entered_by(2)
        assert gate.in_flight == 2 and gate.quiet.is_set()  # a steady flow is not a burst
        requests.append(asyncio.create_task(gate(scope, receive, send)))
        await entered_by(3)
        assert gate.in_flight == 3 and not gate.quiet.is_set()
        release.set()
        await asyncio.gather(*requests)
        assert gate.in_flight == 0 and gate.quiet.is_set()

    asyncio.run(go())
