"""Run one delivery of a provider adapter the way `ticketbridge try` does: through the
Recorder's client, answered by the provider's stub helpdesk (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from bridge.providers.base import Job, Outcome, Provider
from bridge.recorder import Recorder


def dry_run(
    build: Callable[[httpx.AsyncClient], Provider], job: Job
) -> tuple[Outcome, list[dict[str, Any]]]:
    """The outcome and the requests as `try --json` shows them, each with its answer."""
    recorder = Recorder()

    async def go() -> Outcome:
        async with recorder.client() as client:
            provider = build(client)
            recorder.begin(provider)
            return await provider.deliver(job)

    outcome = asyncio.run(go())
    return outcome, recorder.delivery()
