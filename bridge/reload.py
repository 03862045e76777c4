"""Live configuration reload: SIGHUP, and POST /admin/api/reload.

The rules, sources, providers and templates are loaded again from the directories the process
started with, in a thread (10,000 rules take a couple of seconds, the loop keeps answering).
A configuration with any problem is refused and logged with every problem, and the running one
goes on serving. A good one is handed at once to every part that uses the service (the
receiver, the worker, the admin, the gate) and its secrets to the log's masking: the next
request and the next event see it. What was routed before keeps the actions it was rendered
with, since a delivery stores its action. One process reloads per signal or request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import httpx

from bridge.exceptions import ConfigError, Problem
from bridge.logs import mask_also
from bridge.service import Service, load_service

log = logging.getLogger("bridge.reload")

User = Callable[[Service], None]  # a part that takes the new service


@dataclass(frozen=True, kw_only=True)
class Reloaded:
    """What a reload did: the new service, or the problems that refused it."""

    service: Service | None
    problems: tuple[Problem, ...] = ()


class Reloader:
    def __init__(
        self,
        service: Service,
        *,
        client: httpx.AsyncClient,
        users: Sequence[User],
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        self.service = service
        self._client = client
        self._users = tuple(users)
        self._environ = environ
        self._lock = asyncio.Lock()  # binds to the loop on first use

    async def reload(self) -> Reloaded:
        """Load the configuration again; hand it over only if it has no problem at all."""
        async with self._lock:  # one at a time: a second waits, then loads what is there
            config = self.service.config
            try:
                service = await asyncio.to_thread(
                    functools.partial(load_service, to_run=True),
                    config.rules_dir,
                    config.templates_dir,
                    self._environ,
                    self._client,
                )
            except ConfigError as exc:
                log.error(
                    "configuration refused; the running one goes on",
                    extra={
                        "action": "reload",
                        "outcome": "refused",
                        "problems": [str(problem) for problem in exc.problems],
                    },
                )
                return Reloaded(service=None, problems=tuple(exc.problems))
            mask_also(service.config.secrets)
            for use in self._users:
                use(service)
            self.service = service
            new = service.config
            log.info(
                "configuration reloaded",
                extra={
                    "action": "reload",
                    "outcome": "reloaded",
                    "sources": len(new.sources),
                    "rules": len(new.rules),
                    "providers": len(new.providers),
                },
            )
            return Reloaded(service=service)


@contextlib.contextmanager
def reload_on_sighup(reloader: Reloader | None) -> Iterator[None]:
    """While the block runs, SIGHUP reloads (on this loop; where signals cannot be handled,
    off the main thread, only POST /admin/api/reload does)."""
    if reloader is None:
        yield
        return
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task[Reloaded]] = set()

    def hangup() -> None:
        task = loop.create_task(reloader.reload())
        running.add(task)
        task.add_done_callback(running.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, hangup)
    except (ValueError, RuntimeError):  # not the main thread
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
