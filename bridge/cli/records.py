"""events, show, replay, purge, schema: reading and steering what the store holds."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from functools import partial
from importlib import resources

import httpx

from bridge.cli.common import Failed, _load, _with_store
from bridge.ids import new_id
from bridge.service import Service
from bridge.store.base import DeliveryStatus, EventStatus, Store
from bridge.views import event_detail_json, event_detail_text, iso


def cmd_events(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        status = EventStatus(args.status) if args.status else None
        events = await store.list_events(source=args.source, status=status, limit=args.limit)
        rows = []
        for event in events:
            detail = await store.get_event(event.id)
            deliveries = detail.deliveries if detail else []
            counts: dict[str, int] = {}
            for d in deliveries:
                counts[d.status.value] = counts.get(d.status.value, 0) + 1
            rows.append((event, counts))
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "id": e.id,
                            "source": e.source,
                            "received_at": iso(e.received_at),
                            "status": e.status.value,
                            "matched_rules": list(e.matched_rules),
                            "deliveries": c,
                        }
                        for e, c in rows
                    ],
                    indent=2,
                )
            )
            return 0
        for event, counts in rows:
            summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "-"
            print(
                f"{event.id}  {iso(event.received_at)}  {event.source:<16} {event.status.value:<9} "
                f"deliveries: {summary}  rules: {', '.join(event.matched_rules) or '-'}"
            )
        if not rows:
            print("no events", file=sys.stderr)
        return 0

    return _with_store(args, work)


def cmd_show(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        detail = await store.get_event(args.event_id)
        if detail is None:
            raise Failed(f"no event {args.event_id}")
        if args.json:
            print(json.dumps(event_detail_json(detail), indent=2, ensure_ascii=False))
        else:
            print(event_detail_text(detail))
        return 0

    return _with_store(args, work)


def cmd_replay(args: argparse.Namespace) -> int:
    client = httpx.AsyncClient()
    try:
        service = _load(args, client)
        return _with_store(args, partial(_replay, args, service))
    finally:
        # Replay builds the providers but sends nothing, so the client holds no connections.
        asyncio.run(client.aclose())


async def _replay(args: argparse.Namespace, service: Service, store: Store) -> int:
    from bridge.dispatch import route_event

    now = time.time()
    if args.event_id:
        detail = await store.get_event(args.event_id)
        if detail is None:
            raise Failed(f"no event {args.event_id}")
        routing = dataclasses.replace(
            route_event(service, detail.event, now=now, new_id=partial(new_id, "dlv")),
            supersede_dead=True,
        )
        await store.save_routing(routing, now=now)
        ids = ", ".join(d.id for d in routing.deliveries) or "none (no rule matches now)"
        print(f"{args.event_id}: routed again with the current rules; new deliveries: {ids}")
        return 0
    dead = await store.list_deliveries(
        status=DeliveryStatus.DEAD, provider=args.provider, limit=100_000
    )
    retried = 0
    for delivery in dead:
        if delivery.action is None:
            print(
                f"{delivery.id}: not retried (it never rendered); "
                f"replay event {delivery.event_id} instead"
            )
            continue
        retried += await store.retry_delivery(delivery.id, now=now)
    print(f"{retried} dead deliveries queued again")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        counts = await store.purge(before=time.time() - args.older_than)
        print(f"purged {counts.events} events and {counts.dedupe_keys} dedupe keys")
        return 0

    return _with_store(args, work)


def cmd_schema(args: argparse.Namespace) -> int:
    print(resources.files("bridge.config").joinpath("schema.json").read_text())
    return 0
