"""The benchmark harness's pure parts: wrk output parsing, medians and ratios, the README
section, the generated rules. No wrk, no servers, nothing timed."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import yaml

from bench import payload, product
from bench.load import LoadError, lua_script, parse_wrk
from bench.micro.workload import Backlog, Loop, Product, Signed
from bench.report import (
    BEGIN,
    END,
    Row,
    median,
    paired_ratio,
    percentile,
    replace_section,
    section,
    slope_per_minute,
    table,
)
from bench.scenarios.databases import Database, postgres_schemas, sqlite_file
from bench.scenarios.drain import ACCEPTED
from bridge.delivery.worker import Worker
from bridge.records import DeliveryStatus, EventStatus
from bridge.service import load_service
from bridge.store import open_store
from tests.helpers import shop_event
from tests.store.conftest import postgres_server

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000/hooks/bench
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.01ms    3.20ms  48.10ms   80.00%
  25000 requests in 10.00s, 4.10MB read
Requests/sec:   2500.00
Transfer/sec:    420.00KB
BENCH_JSON {"requests": 25000, "duration_us": 10000000, "errors": {"connect": 0, "read": 1, \
"write": 0, "status": 2, "timeout": 0}, "latency_us": {"p50": 11500, "p99": 30250, "max": 48100}}
"""


def test_parse_wrk_reads_the_lua_done_line() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests == 25000
    assert result.seconds == 10.0
    assert result.per_second == 2500.0
    assert result.p50_ms == 11.5
    assert result.p99_ms == 30.25
    assert result.errors == 3


def test_parse_wrk_without_the_line_says_so() -> None:
    with pytest.raises(LoadError, match="BENCH_JSON"):
        parse_wrk("Running 10s test @ http://127.0.0.1:1/\nunable to connect\n")


def test_lua_script_sets_headers_and_a_delivery_id_per_request() -> None:
    script = lua_script(
        body_file=Path("/tmp/body.json"),
        headers={"x-hub-signature-256": "sha256=ab"},
        prefix="run1",
        limit=0,
    )
    assert 'wrk.headers["x-hub-signature-256"] = "sha256=ab"' in script
    assert 'wrk.headers["X-GitHub-Delivery"] = "run1"' in script
    assert "function done(" in script
    assert "function response(" not in script  # no per-response cost in timed runs
    limited = lua_script(body_file=Path("/b"), headers={}, prefix="p", limit=500)
    assert "answered >= 500" in limited and "os.exit" in limited


def test_median_and_paired_ratio() -> None:
    assert median([]) is None
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    # per-round ratios 0.5, 0.8, 1.0: the median of those, not the ratio of the medians
    assert paired_ratio([50.0, 80.0, 100.0], [100.0, 100.0, 100.0]) == 0.8
    assert paired_ratio([1.0], [0.0]) is None
    assert paired_ratio([], []) is None


def test_percentile_by_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 99) is None


def test_slope_per_minute() -> None:
    assert slope_per_minute([(0.0, 50.0), (30.0, 51.0), (60.0, 52.0)]) == pytest.approx(2.0)
    assert slope_per_minute([(0.0, 50.0)]) is None


def test_readme_section_is_appended_then_replaced() -> None:
    text = "# Benchmarks\n\n## Choosing the PostgreSQL driver\n\nkept\n"
    rows = [Row(scenario="ingest-1", what="A", rate=1234.5, p99_ms=2.0, met=True)]
    first = replace_section(text, section(rows, command="python -m bench", about="m"))
    assert first.startswith(text.rstrip("\n"))
    assert first.count(BEGIN) == 1 and first.count(END) == 1
    assert "| ingest-1 | A | 1,234 req/s | 2.0 |" in first  # 1,234.5 rounds to even
    again = replace_section(first, section([], command="python -m bench --quick", about="m"))
    assert again.count(BEGIN) == 1
    assert "ingest-1" not in again and "kept" in again


def test_a_partial_run_keeps_the_other_scenarios_rows_and_says_where_each_is_from() -> None:
    full = [
        Row(scenario="ingest-1", what="old ingest", rate=10.0),
        Row(scenario="load", what="old load", rate=1.0),
    ]
    first = section(full, command="python -m bench", about="run one")
    partial = [Row(scenario="load", what="new load", rate=2.0)]
    order = ["ingest-1", "load"]
    second = section(
        partial,
        command="python -m bench --only load",
        about="run two",
        ran=["load"],
        previous="x\n" + first,
        order=order,
    )
    assert "old ingest" in second and "new load" in second and "old load" not in second
    assert "- ingest-1: `python -m bench`, run one." in second
    assert "- load: `python -m bench --only load`, run two." in second
    assert second.index("old ingest") < second.index("new load")  # in the scenarios' order
    # a block written before runs were recorded: its rows keep its "Latest figures" line
    legacy = "\n".join(
        [BEGIN, "Latest figures: `python -m bench`, long ago.", "", table(full), "", END]
    )
    third = section(partial, command="b", about="now", ran=["load"], previous=legacy, order=order)
    assert "- ingest-1: `python -m bench`, long ago." in third and "old load" not in third


def test_table_marks_skips_and_targets() -> None:
    text = table(
        [
            Row(scenario="ingest-2", what="PostgreSQL", note="skipped: no PostgreSQL"),
            Row(scenario="e2e", what="w", rate=10.0, unit="ev/s", target="≥0.70 of E", met=False),
        ]
    )
    assert "PostgreSQL (skipped: no PostgreSQL)" in text
    assert "| 10 ev/s |" in text and "| NO |" in text


@pytest.mark.parametrize("count", [1, 10, 10_000])
def test_rules_yaml_has_count_rules_and_only_the_last_matches(count: int) -> None:
    rules = yaml.safe_load(product.rules_yaml(count))["rules"]
    assert len(rules) == count
    assert len({rule["name"] for rule in rules}) == count
    matching = [r for r in rules if r["when"]["body.type"] == payload.EVENT_TYPE]
    assert matching == [rules[-1]]
    # rules as users write them: every one links its event to a ticket
    assert all(rule["ticket"]["correlate"] == "bench:{{ event.id }}" for rule in rules)


def test_the_lifecycle_configuration_loads_and_keys_every_step_by_its_order(
    tmp_path: Path,
) -> None:
    from bridge.config import draft_config

    rules, templates = product.write_config(
        tmp_path, rules=1, provider=product.log_provider(), lifecycle=True
    )
    draft = draft_config(rules, templates, {payload.SECRET_ENV: payload.SECRET})
    assert draft.config is not None and not draft.problems
    steps = yaml.safe_load((rules / "rules.yaml").read_text())["rules"]
    assert [rule["action"] for rule in steps] == ["create_ticket", "add_note", "close_ticket"]
    assert {rule["ticket"]["correlate"] for rule in steps} == {"order:{{ body.order }}"}


def test_rules_yaml_needs_a_rule() -> None:
    with pytest.raises(ValueError):
        product.rules_yaml(0)


def test_write_config_is_a_loadable_configuration(tmp_path: Path) -> None:
    from bridge.config import draft_config

    rules, templates = product.write_config(
        tmp_path,
        rules=3,
        provider=product.http_provider(
            "http://127.0.0.1:9/t", rate_limit={"per_second": 50, "burst": 1}, timestamps=True
        ),
    )
    draft = draft_config(rules, templates, {payload.SECRET_ENV: payload.SECRET})
    assert draft.config is not None and not draft.problems


def test_body_is_2159_bytes_of_json() -> None:
    data = payload.body()
    assert len(data) == 2159
    assert json.loads(data)["type"] == payload.EVENT_TYPE


@pytest.fixture(params=["SQLite", "PostgreSQL"])
def bench_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A store as bench's scenarios see it from outside, empty, on either backend."""
    if request.param == "SQLite":
        yield sqlite_file(tmp_path / "bridge.db")
        return
    database, drop = postgres_schemas(postgres_server())()
    try:
        yield database
    finally:
        drop()


def test_the_history_copies_are_finished_lifecycles_the_store_reads(
    tmp_path: Path, bench_database: Database
) -> None:
    """bench history's copies of one real lifecycle: every table gets its rows, with ids
    older than the original, and the store reads each copy back as a finished event; and the
    drain's span and counts read what the store wrote."""
    rules, templates = product.write_config(tmp_path, rules=1, provider=product.log_provider())
    body = json.loads(payload.body())
    event = replace(shop_event(1, body), source=payload.SOURCE)
    db = bench_database.url

    async def lifecycle() -> None:
        store = open_store(db)
        await store.open()
        try:
            await store.ingest([event], dedupe_window=60, now=1e9)
            async with httpx.AsyncClient() as client:
                env = {**os.environ, payload.SECRET_ENV: payload.SECRET}
                service = load_service(rules, templates, env, client)
                await Worker(service=service, store=store).run_until_idle()
        finally:
            await store.close()

    asyncio.run(lifecycle())
    assert 0 < bench_database.span(since=0) < 60
    bench_database.copy_lifecycle(50)
    for name in ("events", "deliveries", "attempts", "tickets"):
        assert bench_database.count(f"SELECT count(*) FROM {name}") == 51
    assert bench_database.count(ACCEPTED) == 0
    oldest = bench_database.count("SELECT min(received_at) FROM events WHERE id = 'evh_000000001'")
    assert oldest < 1e9

    async def read() -> tuple[EventStatus, str | None]:
        store = open_store(db, create=False)
        await store.open()
        try:
            detail = await store.get_event("evh_000000050")
            assert detail is not None
            (delivery,) = detail.deliveries
            return detail.event.status, delivery.correlate
        finally:
            await store.close()

    assert asyncio.run(read()) == (EventStatus.DONE, "bench:evh_000000050")


def test_the_micro_benchmarks_workload_is_what_the_worker_stores(tmp_path: Path) -> None:
    """bench/micro's workload, untimed (no pytest-benchmark needed): the load's signed request
    through the source's intake, a backlog of keyed deliveries routed into a real SQLite file,
    one batch claimed and finished done; so that a change of the store's API fails the suite,
    not only `pytest bench/micro`."""
    rules, templates = product.write_config(
        tmp_path, rules=3, provider={"type": "log", "concurrency": 4}
    )
    data = payload.body()
    signed = Signed(body=data, headers=payload.signed_headers(rules, templates, data))
    with asyncio.Runner() as runner:
        loop = Loop(runner)
        client = httpx.AsyncClient()
        env = {payload.SECRET_ENV: payload.SECRET}
        loaded = Product(
            rules=rules,
            templates=templates,
            service=load_service(rules, templates, env, client),
            signed=signed,
        )
        (event,) = loaded.new_events(1, now=1e9)
        assert event.source == payload.SOURCE and event.raw == data and event.dedupe_key
        store = open_store(f"sqlite:///{tmp_path / 'bridge.db'}")
        loop.run(store.open())
        try:
            backlog = Backlog(product=loaded, store=store, loop=loop, size=6)
            backlog.top_up()
            claims = backlog.claim()
            backlog.check(claims)  # the provider's room: 4
            assert backlog.finish(claims, backlog.results(claims)) == [True] * 4
            backlog.top_up()
            stats = loop.run(store.queue_stats())
        finally:
            loop.run(store.close())
            loop.run(client.aclose())
    assert backlog.due == 6 and backlog.finished == 4
    assert stats.deliveries == {
        (product.PROVIDER, DeliveryStatus.DONE): 4,
        (product.PROVIDER, DeliveryStatus.PENDING): 6,
    }
