"""ticketbridge: serve, worker, check, try, events, show, replay, purge, schema (DESIGN §4.2).

Exit codes: 0 ok; 1 the thing checked is wrong (config errors, a failed send, no such
event); 2 usage errors (argparse's own).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from importlib import resources
from pathlib import Path

import httpx

from bridge.config import parse_duration
from bridge.exceptions import BridgeError, ConfigError, RejectedRequest
from bridge.ids import new_id
from bridge.logs import configure_logging, mask
from bridge.service import Service, load_service
from bridge.sources.request import RawRequest
from bridge.store import open_store
from bridge.store.base import DeliveryStatus, EventStatus, Store
from bridge.trial import Recorder, Trial, run_trial
from bridge.views import dumps, event_detail_json, event_detail_text, iso, trace_lines

DEFAULT_DB = "sqlite:///bridge.db"


class Failed(Exception):
    """The command ran and the answer is 'no': print the message, exit 1."""


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rules",
        default=os.environ.get("BRIDGE_RULES", "rules"),
        help="rules directory (BRIDGE_RULES)",
    )
    parser.add_argument(
        "--templates",
        default=os.environ.get("BRIDGE_TEMPLATES", "templates"),
        help="templates directory (BRIDGE_TEMPLATES)",
    )


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        default=os.environ.get("BRIDGE_DATABASE_URL", DEFAULT_DB),
        help="database URL (BRIDGE_DATABASE_URL)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticketbridge", description="Webhooks in, helpdesk tickets out."
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("BRIDGE_LOG_LEVEL", "info"),
        choices=["debug", "info", "warning", "error"],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="receive webhooks and deliver tickets")
    _add_config(serve)
    _add_db(serve)
    serve.add_argument("--host", default=os.environ.get("BRIDGE_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument(
        "--no-worker", action="store_true", help="receive only; run `worker` elsewhere"
    )

    worker = commands.add_parser("worker", help="deliver stored events without receiving")
    _add_config(worker)
    _add_db(worker)

    check = commands.add_parser("check", help="validate the configuration and render the samples")
    _add_config(check)

    trial = commands.add_parser("try", help="show what a payload would do: trace, action, requests")
    _add_config(trial)
    trial.add_argument("source")
    trial.add_argument("payload", help="a file with the request body, or - for standard input")
    trial.add_argument("--header", action="append", default=[], metavar="K:V")
    trial.add_argument("--send", action="store_true", help="really call the providers")
    trial.add_argument("--json", action="store_true")

    events = commands.add_parser("events", help="list stored events, newest first")
    _add_db(events)
    events.add_argument("--status", choices=[s.value for s in EventStatus])
    events.add_argument("--source")
    events.add_argument("--limit", type=int, default=50)
    events.add_argument("--json", action="store_true")

    show = commands.add_parser(
        "show", help="one event with its rule trace, deliveries and attempts"
    )
    _add_db(show)
    show.add_argument("event_id")
    show.add_argument("--json", action="store_true")

    replay = commands.add_parser("replay", help="route an event again, or retry dead deliveries")
    _add_config(replay)
    _add_db(replay)
    replay.add_argument("event_id", nargs="?")
    replay.add_argument("--status", choices=["dead"])
    replay.add_argument("--provider")

    purge = commands.add_parser("purge", help="delete finished events older than a duration")
    _add_db(purge)
    purge.add_argument("--older-than", required=True, type=_duration, metavar="DURATION")

    commands.add_parser("schema", help="print the configuration's JSON Schema")
    return parser


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "replay" and bool(args.event_id) == bool(args.status):
        parser.error("replay takes an EVENT_ID or --status dead, not both or neither")
    handler = COMMANDS[args.command]
    try:
        return handler(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stdout)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    except Failed as exc:
        print(f"ticketbridge: {exc}", file=sys.stderr)
        return 1
    except BridgeError as exc:
        print(f"ticketbridge: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _load(args: argparse.Namespace, client: httpx.AsyncClient | None = None) -> Service:
    return load_service(
        Path(args.rules), Path(args.templates), os.environ, client or httpx.AsyncClient()
    )


def _with_store(args: argparse.Namespace, work: Callable[[Store], Awaitable[int]]) -> int:
    async def run() -> int:
        store = open_store(args.db)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


# -- serve and worker ----------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.app import build_app
    from bridge.worker import Worker

    client = httpx.AsyncClient()
    service = _load(args, client)
    configure_logging(args.log_level, secrets=service.config.secrets)
    store = open_store(args.db)
    worker = None if args.no_worker else Worker(service=service, store=store)
    app = build_app(service=service, store=store, worker=worker, client=client)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from bridge.worker import Worker

    client = httpx.AsyncClient()
    service = _load(args, client)
    configure_logging(args.log_level, secrets=service.config.secrets)

    async def run() -> int:
        store = open_store(args.db)
        await store.open()
        worker = Worker(service=service, store=store)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(worker.stop()))
        try:
            await worker.run()
        finally:
            await store.close()
            await client.aclose()
        return 0

    return asyncio.run(run())


# -- check and try -------------------------------------------------------------------------


def _headers(pairs: Sequence[str]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise Failed(f"--header {pair!r} is not NAME:VALUE")
        headers[name.strip().lower()] = value.strip()
    return headers


def _trial_request(body: bytes, headers: dict[str, str]) -> RawRequest:
    headers.setdefault("content-type", "application/json")
    return RawRequest(
        method="POST", url="http://localhost/try", headers=headers, query=(), body=body
    )


def cmd_check(args: argparse.Namespace) -> int:
    recorder = Recorder()
    service = _load(args, recorder.client(send=False))
    config = service.config
    samples_dir = Path(args.rules) / "samples"
    problems: list[str] = []
    lines: list[str] = []
    samples = sorted(
        p for p in samples_dir.glob("*/*.json") if not p.name.endswith(".headers.json")
    )
    for sample in samples:
        source = sample.parent.name
        if source not in service.sources:
            problems.append(f"{sample}: no source named {source!r} (the folder names the source)")
            continue
        headers_file = sample.with_name(sample.stem + ".headers.json")
        headers = json.loads(headers_file.read_text()) if headers_file.exists() else {}
        request = _trial_request(
            sample.read_bytes(), {str(k).lower(): str(v) for k, v in headers.items()}
        )
        try:
            trials = asyncio.run(run_trial(service, source, request, recorder=recorder))
        except RejectedRequest as exc:
            problems.append(f"{sample}: the source would refuse it: {exc}")
            continue
        for trial in trials:
            matched = ", ".join(trial.dispatch.match.matched) or "no rule (unmatched)"
            lines.append(f"{sample}: {matched}")
            for action in trial.actions:
                if action.error:
                    problems.append(f"{sample}: rule {action.rule}: {action.error}")
                elif action.outcome and action.outcome.kind.value not in ("success", "skipped"):
                    problems.append(
                        f"{sample}: rule {action.rule}: provider {action.provider}: "
                        f"{action.outcome.message}"
                    )
    for line in problems:
        print(mask(line, config.secrets))
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(
        f"ok: {len(config.sources)} sources, {len(config.rules)} rules, "
        f"{len(config.providers)} providers, {len(samples)} samples"
    )
    for line in lines:
        print(f"  {line}")
    return 0


def cmd_try(args: argparse.Namespace) -> int:
    body = sys.stdin.buffer.read() if args.payload == "-" else _read(args.payload)
    recorder = Recorder()
    client = recorder.client(send=args.send)
    service = _load(args, client)
    if args.source not in service.sources:
        raise Failed(
            f"no source named {args.source!r} (have: {', '.join(sorted(service.sources))})"
        )
    request = _trial_request(body, _headers(args.header))

    async def run() -> list[Trial]:
        try:
            return await run_trial(service, args.source, request, recorder=recorder)
        finally:
            await client.aclose()

    try:
        trials = asyncio.run(run())
    except RejectedRequest as exc:
        raise Failed(f"the source would refuse this payload: {exc}") from None
    secrets = service.config.secrets
    if args.json:
        out = [t.to_json() for t in trials]
        print(dumps(out[0] if len(out) == 1 else out, secrets))
    else:
        print("note: signature verification is skipped by `try`", file=sys.stderr)
        for trial in trials:
            print(mask(_trial_text(trial, sent=args.send), secrets))
    failed = any(
        a.error or (a.outcome and a.outcome.kind.value not in ("success", "skipped"))
        for t in trials
        for a in t.actions
    )
    return 1 if failed else 0


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise Failed(f"cannot read {path}: {exc.strerror}") from None


def _trial_text(trial: Trial, *, sent: bool) -> str:
    data = trial.to_json()
    lines = ["rules"] + trace_lines(data["trace"])
    if trial.dispatch.match.default_used:
        lines.append("  (no rule matched; the source's default_rule was used)")
    if not data["actions"]:
        lines.append("no rule matched: the event would be kept as unmatched")
    for action in data["actions"]:
        lines.append(
            f"action {action['rule']} -> {action['provider']}: "
            f"{action['action'] or 'render failed'}"
        )
        if action["error"]:
            lines.append(f"  error: {action['error']}")
        if action["ticket"]:
            lines.extend(
                "  " + line
                for line in json.dumps(action["ticket"], indent=2, ensure_ascii=False).splitlines()
            )
        for request in action["requests"]:
            lines.append(f"  request: {request['method']} {request['url']}")
            lines.extend(f"    {name}: {value}" for name, value in request["headers"].items())
            if request["json"] is not None:
                lines.extend(
                    "    " + line
                    for line in json.dumps(
                        request["json"], indent=2, ensure_ascii=False
                    ).splitlines()
                )
        if sent and "outcome" in action:
            lines.append(
                f"  sent: {action['outcome']['kind']} {action['outcome']['message']}".rstrip()
            )
    return "\n".join(lines)


# -- reading and steering ------------------------------------------------------------------


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
    from bridge.dispatch import route_event

    service = _load(args)

    async def work(store: Store) -> int:
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

    return _with_store(args, work)


def cmd_purge(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        counts = await store.purge(before=time.time() - args.older_than)
        print(f"purged {counts.events} events and {counts.dedupe_keys} dedupe keys")
        return 0

    return _with_store(args, work)


def cmd_schema(args: argparse.Namespace) -> int:
    print(resources.files("bridge.config").joinpath("schema.json").read_text())
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "worker": cmd_worker,
    "check": cmd_check,
    "try": cmd_try,
    "events": cmd_events,
    "show": cmd_show,
    "replay": cmd_replay,
    "purge": cmd_purge,
    "schema": cmd_schema,
}
