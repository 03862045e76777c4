"""The micro-benchmarks' fixtures: the product's own configuration, loaded as users load it.

`product(rules)` is bench/product.py's generated rules directory (the `bench` source with the
github preset, one `log` provider named `target`, N rules of which only the last matches the
load's body, each with a correlate unique per event) compiled by bridge.service.load_service,
as `serve` and `worker` compile it. `signed` is the load's request: the 2,159-byte body of
bench/payload.py with the headers its sender sends, the signature made through the source's
own verifier. `loop` drives the store's coroutines (one event loop per benchmark), `store` is
a SQLite file under the benchmark's tmp_path opened with the product's defaults (WAL,
synchronous=FULL), and `backlog` keeps 1,000 routed, keyed deliveries due in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bench.micro.workload import Backlog, Loop, Product, Signed
from bench.payload import SECRET, SECRET_ENV, SIZE, body, signed_headers
from bench.product import PROVIDER, write_config
from bridge.service import load_service
from bridge.store import Store, open_store

ENV = {SECRET_ENV: SECRET}
# the log provider, as the `match` and `backlog` scenarios run it, with the room of e2e's http
# provider: the worker claims up to `concurrency` deliveries of it at once (one claim's batch)
PROVIDER_CONFIG = {"type": "log", "concurrency": 32}
BACKLOG = 1_000


@pytest.fixture(scope="session")
def client() -> Iterator[httpx.AsyncClient]:
    """The providers' HTTP client (the log provider never uses it)."""
    http = httpx.AsyncClient()
    yield http
    asyncio.run(http.aclose())


@pytest.fixture(scope="session")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Signed:
    rules, templates = write_config(
        tmp_path_factory.mktemp("signing"), rules=1, provider=PROVIDER_CONFIG
    )
    data = body()
    assert len(data) == SIZE
    headers = signed_headers(rules, templates, data)
    # what wrk sends besides (the receiver sees them all; the github preset reads none)
    headers |= {"host": "127.0.0.1:8000", "content-length": str(len(data))}
    return Signed(body=data, headers=headers)


@pytest.fixture(scope="session")
def product(
    tmp_path_factory: pytest.TempPathFactory, client: httpx.AsyncClient, signed: Signed
) -> Callable[[int], Product]:
    """product(rules): the configuration of `rules` rules, loaded once per session."""
    made: dict[int, Product] = {}

    def load(rules: int) -> Product:
        if rules not in made:
            root = tmp_path_factory.mktemp(f"rules-{rules}")
            rules_dir, templates = write_config(root, rules=rules, provider=PROVIDER_CONFIG)
            service = load_service(rules_dir, templates, ENV, client)
            assert set(service.providers) == {PROVIDER} and len(service.rules) == rules
            made[rules] = Product(
                rules=rules_dir, templates=templates, service=service, signed=signed
            )
        return made[rules]

    return load


@pytest.fixture
def loop() -> Iterator[Loop]:
    """One event loop for the benchmark: `loop.run(coroutine)` from the timed code (the
    loop's own turns, a few µs a call, are in the store benchmarks' figures)."""
    with asyncio.Runner() as runner:
        yield Loop(runner)


@pytest.fixture
def store(tmp_path: Path, loop: Loop) -> Iterator[Store]:
    """A fresh SQLite store, as `--db sqlite:///...` opens it (synchronous=FULL)."""
    opened = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
    loop.run(opened.open())
    yield opened
    loop.run(opened.close())


@pytest.fixture
def backlog(product: Callable[[int], Product], store: Store, loop: Loop) -> Backlog:
    """The store holding BACKLOG due deliveries, routed by the 10-rule configuration."""
    kept = Backlog(product=product(10), store=store, loop=loop, size=BACKLOG)
    kept.top_up()
    return kept
