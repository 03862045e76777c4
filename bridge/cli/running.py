"""serve and worker: the long-running commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

from bridge.cli.common import _load
from bridge.logs import configure_logging
from bridge.metrics import Metrics
from bridge.providers.client import delivery_client
from bridge.reload import Reloader, reload_on_sighup
from bridge.service import load_service
from bridge.store import open_store


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    _as_many_files_as_allowed()
    server = {
        "host": args.host,
        "port": args.port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
    }
    if args.processes <= 1:
        app = serve_app(args.rules, args.templates, args.db, args.log_level, not args.no_worker)
        uvicorn.run(app, **server)
        return 0
    # N processes on one socket (uvicorn's supervisor): the configuration is checked here once,
    # so a bad one stops before any process starts, then each builds its own app from it
    _load(args)
    configure_logging(args.log_level)
    os.environ.update(
        {
            "BRIDGE_RULES": str(Path(args.rules).resolve()),
            "BRIDGE_TEMPLATES": str(Path(args.templates).resolve()),
            "BRIDGE_DATABASE_URL": args.db,
            "BRIDGE_LOG_LEVEL": args.log_level,
            _WITH_WORKER: "0" if args.no_worker else "1",
        }
    )
    uvicorn.run(
        "bridge.cli.running:app_from_environment",
        factory=True,
        workers=args.processes,
        **server,
    )
    return 0


def _as_many_files_as_allowed() -> None:
    """Raise the soft limit on open files to the hard one: each connection is a descriptor,
    and a default soft limit of 1,024 would be reached before defaults.max_in_flight."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


_WITH_WORKER = "BRIDGE_SERVE_WITH_WORKER"  # set by `serve --processes N` for its processes


def app_from_environment() -> ASGIApp:
    """The app of one process of `serve --processes N`, from what serve put in the
    environment."""
    env = os.environ
    return serve_app(
        env["BRIDGE_RULES"],
        env["BRIDGE_TEMPLATES"],
        env["BRIDGE_DATABASE_URL"],
        env["BRIDGE_LOG_LEVEL"],
        env[_WITH_WORKER] == "1",
    )


def serve_app(rules: str, templates: str, db: str, log_level: str, with_worker: bool) -> ASGIApp:
    """The receiver, with a worker beside it unless `with_worker` is false."""
    from bridge.app import build_app
    from bridge.delivery.worker import Worker

    client = delivery_client()
    service = load_service(Path(rules), Path(templates), os.environ, client, to_run=True)
    admin_token = os.environ.get("BRIDGE_ADMIN_TOKEN") or None
    secrets = service.config.secrets | ({admin_token} if admin_token else set())
    configure_logging(log_level, secrets=secrets)
    store = open_store(db)
    config = service.config
    metrics = Metrics(sources=config.sources, providers=config.providers)
    worker = Worker(service=service, store=store, metrics=metrics) if with_worker else None
    return build_app(
        service=service,
        store=store,
        worker=worker,
        client=client,
        admin_token=admin_token,
        metrics=metrics,
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from bridge.delivery.worker import Worker

    client = delivery_client()
    service = _load(args, client, to_run=True)
    configure_logging(args.log_level, secrets=service.config.secrets)

    async def run() -> int:
        store = open_store(args.db)
        await store.open()
        worker = Worker(service=service, store=store)
        stopping: list[asyncio.Task[None]] = []

        def stop() -> None:
            if not stopping:  # a second signal changes nothing: the grace is already running
                stopping.append(asyncio.create_task(worker.stop()))

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        reloader = Reloader(service, client=client, users=[worker.use])
        try:
            with reload_on_sighup(reloader):
                await worker.run()
            # run() returns as soon as the worker stops claiming; the attempts in flight
            # finish (or are released) within the grace, while the store is still open
            for task in stopping:
                await task
        finally:
            await store.close()
            await client.aclose()
        return 0

    return run_loop(run())


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """`main` on uvloop where it is installed (uvicorn[standard] brings it, and `serve` runs
    on it too), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover (not on Windows)
        return asyncio.run(main)
    return uvloop.run(main)
