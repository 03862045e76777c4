"""serve and worker: the long-running commands."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Coroutine
from typing import Any

from bridge.cli.common import _load
from bridge.logs import configure_logging
from bridge.metrics import Metrics
from bridge.providers.client import delivery_client
from bridge.store import open_store


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.app import build_app
    from bridge.delivery.worker import Worker

    client = delivery_client()
    service = _load(args, client)
    admin_token = os.environ.get("BRIDGE_ADMIN_TOKEN") or None
    secrets = service.config.secrets | ({admin_token} if admin_token else set())
    configure_logging(args.log_level, secrets=secrets)
    store = open_store(args.db)
    config = service.config
    metrics = Metrics(sources=config.sources, providers=config.providers)
    worker = None if args.no_worker else Worker(service=service, store=store, metrics=metrics)
    app = build_app(
        service=service,
        store=store,
        worker=worker,
        client=client,
        admin_token=admin_token,
        metrics=metrics,
    )
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
    from bridge.delivery.worker import Worker

    client = delivery_client()
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

    return run_loop(run())


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """`main` on uvloop where it is installed (uvicorn[standard] brings it, and `serve` runs
    on it too), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover (not on Windows)
        return asyncio.run(main)
    return uvloop.run(main)
