"""events, show, replay, purge, schema: reading and steering what the store holds."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from functools import partial
from importlib import resources
from pathlib import Path

import httpx

from bridge.cli.common import Failed, _load, _with_store
from bridge.config import Defaults, load_defaults
from bridge.delivery.steering import replay_event, retry_dead
from bridge.records import Delivery, DeliveryStatus, EventStatus, NewDelivery
from bridge.service import Service
from bridge.store.base import Store
from bridge.times import hold_until, iso
from bridge.views import event_detail_json, event_detail_text


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
            print(
                json.dumps(event_detail_json(detail, now=time.time()), indent=2, ensure_ascii=False)
            )
        else:
            print(event_detail_text(detail, now=time.time()))
        return 0

    return _with_store(args, work)


def cmd_replay(args: argparse.Namespace) -> int:
    if not args.event_id:
        # retrying dead deliveries sends their stored actions: the store is all it needs
        return _with_store(args, partial(_retry_dead, args))
    client = httpx.AsyncClient()
    try:
        service = _load(args, client)
        return _with_store(args, partial(_replay, args, service))
    finally:
        # Replay builds the providers but sends nothing, so the client holds no connections.
        asyncio.run(client.aclose())


async def _replay(args: argparse.Namespace, service: Service, store: Store) -> int:
    routing = await replay_event(service, store, args.event_id, now=time.time())
    if routing is None:
        raise Failed(f"no event {args.event_id}")
    ids = ", ".join(d.id for d in routing.deliveries) or "none (no rule matches now)"
    print(f"{args.event_id}: routed again with the current rules; new deliveries: {ids}")
    # a ticket that does not render here is stored dead at once: no worker will send it
    dead = [d for d in routing.deliveries if d.status is DeliveryStatus.DEAD]
    if dead:
        raise Failed(
            _listed(f"{len(dead)} new deliveries are dead, their tickets did not render:", dead)
        )
    return 0


async def _retry_dead(args: argparse.Namespace, store: Store) -> int:
    queued, not_queued = await retry_dead(store, provider=args.provider, now=time.time())
    print(f"{queued} dead deliveries queued again")
    unrendered = [d for d in not_queued if d.action is None]
    refused = [d for d in not_queued if d.action is not None]
    problems = []
    if unrendered:
        problems.append(
            _listed(
                f"{len(unrendered)} dead deliveries never rendered, replay their events instead:",
                unrendered,
            )
        )
    if refused:
        problems.append(_listed(f"{len(refused)} dead deliveries could not be queued:", refused))
    if problems:
        raise Failed("\n".join(problems))
    return 0


def _listed(headline: str, deliveries: Sequence[Delivery | NewDelivery]) -> str:
    """`headline`, then each delivery: its id, event, rule and provider, and why it is dead as
    stored (with every configured secret masked when it was stored)."""
    lines = [headline]
    for d in deliveries:
        lines.append(
            f"  {d.id} (event {d.event_id}, rule {d.rule}, provider {d.provider}): {d.last_error}"
        )
    return "\n".join(lines)


def cmd_purge(args: argparse.Namespace) -> int:
    # dedupe keys inside the window stay, or a sender's late retry would make a second ticket
    window = Defaults().dedupe_window
    if Path(args.rules).is_dir():
        window = load_defaults(Path(args.rules), os.environ).dedupe_window

    async def work(store: Store) -> int:
        now = time.time()
        before = now - args.older_than
        counts = await store.purge(before=before, dedupe_before=min(before, now - window))
        print(f"purged {counts.events} events and {counts.dedupe_keys} dedupe keys")
        return 0

    return _with_store(args, work)


def cmd_resume(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        if args.provider:
            if not await store.release_provider(args.provider):
                raise Failed(f"provider {args.provider} is not paused")
            print(f"provider {args.provider} resumed")
            return 0
        now = time.time()
        holds = [h for h in (await store.provider_holds()).values() if h.until > now]
        for hold in holds:
            until = hold_until(hold) or "resumed"
            print(f"{hold.provider}  {hold.state.value} until {until}: {hold.reason}")
        if not holds:
            print("no provider is paused", file=sys.stderr)
        return 0

    return _with_store(args, work)


def cmd_schema(args: argparse.Namespace) -> int:
    print(resources.files("bridge.config").joinpath("schema.json").read_text())
    return 0
