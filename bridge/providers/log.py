"""The `log` provider: records the rendered action and calls it done (the quickstart's)."""

from __future__ import annotations

import json
import logging

from bridge.providers.base import Job, Outcome, OutcomeKind, Provider
from bridge.tickets import TicketRef

log = logging.getLogger("bridge.providers.log")


class LogProvider(Provider):
    async def attempt(self, job: Job) -> Outcome:
        action = job.action.to_json()
        log.info(
            "ticket",
            extra={
                "action": "ticket",
                "provider": self.name,
                "delivery_id": job.delivery_id,
                "ticket": action,
            },
        )
        ref = job.ticket_ref or TicketRef(ticket_id=f"log-{job.delivery_id}")
        return Outcome(
            kind=OutcomeKind.SUCCESS,
            response_excerpt=json.dumps(action, ensure_ascii=False),
            ticket_ref=ref,
            ticket_open=job.action.action.value != "close_ticket",
        )
