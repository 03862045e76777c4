"""The plans of what the worker runs per event: each statement reads an index that holds only
what it may touch, never the history of finished deliveries nor the whole queue to find one row,
so that the worker's cost per event does not grow with the backlog or with the history.

A store holds a backlog (finished deliveries, keyed queues behind their heads, some in flight,
a few events not routed yet) and every per-event statement of queries.sql is explained with
parameters taken from it. SQLite plans without statistics (the store never runs ANALYZE), so
its plans do not depend on the data. PostgreSQL's do: its store is filled at a scale where an
index beats reading the table and analyzed, once as it is and once as it was at a burst (its
events not routed yet, its queue not made: the statistics autovacuum leaves a worker with for
a minute or more, which make the queue's partial indexes look empty), and each statement is
explained twice, as the custom plan of its parameters' values and as the plan it keeps once
prepared (psycopg prepares a statement from its fifth run; PostgreSQL then plans it
generically unless that costs more).

PLANS names, for each statement, the indexes it may read. A plan fails when it reads the
deliveries, events, tickets, attempts or dedupe keys whole, reads another index, looks up an
index of a key's queue without the key's correlate (that is the provider's whole queue), or
walks an index whole that is not a partial one.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from bridge.store.base import Store
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SQLiteStore
from bridge.store.statements import STATEMENTS

from .conftest import T0, scratch_schema

# -- what each statement may read --------------------------------------------------------------

KEY_QUEUE = "deliveries_key_queue"  # a key's unfinished deliveries, in its queue's order
MAY_GO = {KEY_QUEUE, "events_unrouted"}  # whether a delivery may go (queries.sql: may_go)
CLAIM = {"deliveries.seq", *MAY_GO}  # and the claimable deliveries, by provider or all

PLANS: dict[str, set[str]] = {
    # the receiver
    "claim_dedupe": {"dedupe.key"},
    "first_with_key": {"dedupe.key"},
    "notify_work": set(),
    # routing an event
    "claim_unrouted": {"events_unrouted", "events.id"},
    "moved_keys": {"tickets.key"},
    "lock_keys": set(),
    "events_to_route": {"events.id"},
    "supersede_dead": {"deliveries_by_event"},
    "latest_fold": {"deliveries_folds"},
    "join_fold": {"deliveries.id"},
    "settle_queued": {"deliveries.id", "deliveries.seq", KEY_QUEUE},
    "hold_back_later": {"deliveries.id", "deliveries.seq", KEY_QUEUE},
    "mark_routed": {"events.id"},
    "recompute_event_status": {"events.id", "deliveries_by_event"},
    # claiming and starting
    "claim_due_one": {"deliveries_claim", *CLAIM},
    "unnamed_providers": {"deliveries_claim"},
    "events_by_id": {"events.id"},
    "tickets_of_keys": {"tickets.key"},
    "extend_lease": {"deliveries.id"},
    "next_wakeup": {"deliveries_claim", "deliveries_pending_due", "deliveries_leases", *MAY_GO},
    # finishing an attempt
    "held_delivery": {"deliveries.id"},
    "held_deliveries": {"deliveries.id"},
    "finish_delivery": {"deliveries.id"},
    "upsert_ticket": {"tickets.key"},
    "waiting_head": {KEY_QUEUE},
    "release_next": {"deliveries.id", KEY_QUEUE},
    "kill_followers": {KEY_QUEUE},
    "movable_from_dead": {"deliveries.id", KEY_QUEUE},
    "cancel_moved": {"deliveries.id"},
    "move_ticket": {"tickets.key"},
    "settle_head": {"deliveries.id", KEY_QUEUE},
    # an operator's retry (once per delivery retried)
    "delivery_key": {"deliveries.id"},
    "blocker": {"deliveries.id"},
    "retry": {"deliveries.id"},
    "requeue_followers": {"deliveries_blocked_by"},
}

# Statements that do not run per event, and why their plans are not held here.
NOT_PER_EVENT = {
    "claim_due_all": "a claim of every provider at once, which the worker never makes",
    "insert_event": "writes one row, reads none",
    "insert_delivery": "writes one row, reads none",
    "insert_attempt": "writes one row, reads none",
    "insert_moved": "writes one row, reads none",
    "movable_of_provider": "a held provider's queue, 500 at a time, by arrival: reads the queue",
    "holds": "provider_holds: a row per held provider",
    "upsert_hold": "provider_holds: a row per held provider",
    "release_hold": "provider_holds: a row per held provider",
    "bucket": "rate_buckets: a row per paced provider",
    "locked_bucket": "rate_buckets: a row per paced provider",
    "new_bucket": "rate_buckets: a row per paced provider",
    "save_bucket": "rate_buckets: a row per paced provider",
    "list_events": "an operator's page",
    "event": "an operator's page",
    "raw": "an operator's page",
    "attempts_of_event": "an operator's page",
    "deliveries_of_event": "an operator's page",
    "delivery": "an operator's page",
    "attempts_of_delivery": "an operator's page",
    "list_deliveries": "an operator's page",
    "queue_stats": "counts every delivery: the admin's and /metrics' summary",
    "activity": "counts a time range: the admin's chart",
    "purgeable": "housekeeping, in chunks",
    "purge_attempts": "housekeeping, in chunks",
    "purge_deliveries": "housekeeping, in chunks",
    "purge_events": "housekeeping, in chunks",
    "purge_dedupe": "housekeeping, in chunks",
    "drop_bodies": "housekeeping, in chunks",
    "untended_tables": "the worker's look at what autovacuum would do, once a minute",
    "ping": "schema_migrations",
    "applied_versions": "schema_migrations",
    "record_migration": "schema_migrations",
    "create_schema_migrations": "schema_migrations",
    "migration_lock": "at start",
    "migration_unlock": "at start",
}

# what a backend calls an index that has no name of its own in the migrations
LOGICAL = {
    "sqlite_autoindex_deliveries_1": "deliveries.id",
    "deliveries_id_key": "deliveries.id",
    "deliveries_pkey": "deliveries.seq",
    "sqlite_autoindex_events_1": "events.id",
    "events_pkey": "events.id",
    "tickets_pkey": "tickets.key",
    "sqlite_autoindex_dedupe_1": "dedupe.key",
    "dedupe_pkey": "dedupe.key",
}
BIG = {"deliveries", "events", "tickets", "attempts", "dedupe"}
# indexes with a WHERE: walking one whole reads only what it holds
PARTIAL = {
    KEY_QUEUE,
    "deliveries_claim",
    "deliveries_pending_due",
    "deliveries_leases",
    "deliveries_folds",
    "deliveries_blocked_by",
    "deliveries_movable",
    "events_unrouted",
    "events_by_received_at",
}
# indexes of a key (provider and correlate): looked up without the correlate, they read a
# provider's whole queue (or history)
KEY_LED = {KEY_QUEUE, "deliveries_folds"}

# -- a store with a backlog --------------------------------------------------------------------

HISTORY = 20_000  # finished deliveries
QUEUED = 3_000  # keyed deliveries queued, a third of them first in their keys' queues
UNROUTED = 20  # events that arrived last and are not routed yet
IN_FLIGHT = 16  # heads in flight
KEYS = QUEUED // 3
NOW = T0 + HISTORY + QUEUED + UNROUTED + 10


def backlog_sql() -> list[str]:
    """The backlog, as statements both databases run (WITH RECURSIVE counts the rows i)."""
    total = HISTORY + QUEUED
    numbers = "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})"
    event_id = f"'evt_' || CAST({T0} * 1000 + i AS TEXT)"
    queued = f"i > {HISTORY}"
    head = f"i > {HISTORY} AND i <= {HISTORY + KEYS}"
    in_flight = f"i > {HISTORY} AND i <= {HISTORY + IN_FLIGHT}"
    key = f"CASE WHEN {queued} THEN (i - {HISTORY}) % {KEYS} ELSE i % {KEYS * 3} END"
    dead = "i % 50 IN (0, 1)"  # and each second one killed by the first
    events = (
        "INSERT INTO events (id, source, received_at, headers, query, payload, content_type,"
        " status, routed_at)"
        f" SELECT {event_id}, 'shop', {T0} + i, '{{}}', '{{}}', '{{}}', 'application/json',"
        f" CASE WHEN {queued} THEN 'accepted' ELSE 'done' END,"
        f" CASE WHEN i <= {total} THEN {T0} + i END FROM n"
    )
    deliveries = (
        "INSERT INTO deliveries (id, event_id, event_received_at, rule, provider, action,"
        " correlate, status, created_at, queued_at, next_attempt_at, lease_until, lease_token,"
        " last_error, blocked_by, fold_until)"
        f" SELECT 'dlv_' || CAST(i AS TEXT), {event_id}, {T0} + i,"
        " CASE WHEN i % 10 = 0 THEN 'fold' ELSE 'rule-1' END,"
        f" CASE WHEN ({key}) % 5 = 0 THEN 'glassix' ELSE 'vambe' END, '{{}}',"
        f" 'key-' || CAST({key} AS TEXT),"
        f" CASE WHEN {in_flight} THEN 'in_flight' WHEN {head} THEN 'pending'"
        f" WHEN {queued} THEN 'waiting' WHEN {dead} THEN 'dead' ELSE 'done' END,"
        f" {T0} + i, {T0} + i, CASE WHEN {queued} THEN {T0} + i END,"
        f" CASE WHEN {in_flight} THEN {NOW} + 60 END, CASE WHEN {in_flight} THEN 'token' END,"
        f" CASE WHEN {dead} AND NOT {queued} THEN 'HTTP 422' END,"
        f" CASE WHEN i % 50 = 1 AND NOT {queued} THEN 'dlv_' || CAST(i - 1 AS TEXT) END,"
        f" CASE WHEN i % 10 = 0 THEN {T0} + i + 30 END FROM n"
    )
    return [
        f"{numbers.format(total + UNROUTED)} {events}",
        f"{numbers.format(total)} {deliveries}",
        "INSERT INTO attempts (delivery_id, number, started_at, duration, outcome, status_code)"
        " SELECT id, 1, created_at, 0.25, 'success', 200 FROM deliveries WHERE status = 'done'",
        "INSERT INTO tickets (provider, correlate, ticket_ref, updated_at)"
        f" SELECT DISTINCT provider, correlate, '{{}}', {T0} FROM deliveries",
        "INSERT INTO dedupe (source, key, event_id, created_at)"
        " SELECT 'shop', 'k-' || id, id, received_at FROM events",
    ]


def samples(rows: Any) -> dict[str, dict[str, Any]]:
    """Parameters for each statement, taken from the backlog; rows(sql) -> dict rows."""
    waiting = rows("SELECT * FROM deliveries WHERE status = 'waiting' ORDER BY seq LIMIT 1")[0]
    head = rows("SELECT * FROM deliveries WHERE status = 'pending' ORDER BY seq LIMIT 1")[0]
    flying = rows("SELECT * FROM deliveries WHERE status = 'in_flight' ORDER BY seq LIMIT 1")[0]
    dead = rows("SELECT * FROM deliveries WHERE blocked_by IS NOT NULL LIMIT 1")[0]
    unrouted = rows("SELECT * FROM events WHERE routed_at IS NULL LIMIT 1")[0]
    key = {"provider": waiting["provider"], "correlate": waiting["correlate"]}
    place = {
        "id": head["id"],
        "provider": head["provider"],
        "correlate": head["correlate"],
        "event_received_at": head["event_received_at"],
        "event_id": head["event_id"],
        "seq": head["seq"],
    }
    claim = {"now": NOW, "until": NOW + 60, "token": "t" * 32, "limit": 8}
    keys = {"providers": ["glassix", "vambe"], "correlates": [waiting["correlate"], "key-7"]}
    return {
        "claim_dedupe": {
            "source": "shop",
            "key": "k-new",
            "id": "evt_new",
            "now": NOW,
            "since": NOW - 3600,
        },
        "first_with_key": {"source": "shop", "key": "k-new"},
        "notify_work": {},
        "claim_unrouted": {"now": NOW, "limit": 64, "until": NOW + 60},
        "moved_keys": keys,
        "lock_keys": {"names": ["vambe|key-1", "vambe|key-2"]},
        "events_to_route": {"ids": [unrouted["id"]]},
        "supersede_dead": {"event_id": unrouted["id"]},
        "latest_fold": {**key, "rule": "fold"},
        "join_fold": {
            "id": waiting["id"],
            "folded": "{}",
            "action": "{}",
            "fold_until": NOW,
            "due": NOW,
        },
        "settle_queued": {"ids": [waiting["id"], head["id"]]},
        "hold_back_later": {"ids": [waiting["id"], head["id"]]},
        "mark_routed": {
            "event_id": unrouted["id"],
            "now": NOW,
            "matched_rules": "[]",
            "trace": "[]",
        },
        "recompute_event_status": {"event_id": waiting["event_id"]},
        "claim_due_one": {**claim, "provider": "vambe"},
        "unnamed_providers": {"named": ["vambe"]},
        "claim_due_all": claim,
        "events_by_id": {"ids": [waiting["event_id"], head["event_id"]]},
        "tickets_of_keys": keys,
        "extend_lease": {"id": flying["id"], "token": "token", "until": NOW + 60},
        "next_wakeup": {"now": NOW, "skip": ["glassix"]},
        "held_delivery": {"id": flying["id"], "token": "token"},
        "held_deliveries": {"ids": [flying["id"], head["id"]]},
        "finish_delivery": {
            "id": flying["id"],
            "spent": 1,
            "status": "done",
            "next_attempt_at": None,
            "last_error": None,
            "ticket_ref": None,
        },
        "upsert_ticket": {**key, "ticket_ref": None, "open": True, "now": NOW},
        "waiting_head": key,
        "release_next": {**key, "now": NOW},
        "kill_followers": {**place, "message": "dead"},
        "movable_from_dead": {**place, "limit": 500},
        "cancel_moved": {"id": head["id"], "message": "moved"},
        "move_ticket": {**key, "moved_to": "spare", "now": NOW},
        "settle_head": key,
        "delivery_key": {"id": dead["id"]},
        "blocker": {"id": dead["id"]},
        "retry": {"id": dead["id"], "now": NOW},
        "requeue_followers": {"id": dead["blocked_by"], "now": NOW},
    }


# -- reading plans -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    """One read of a table in a plan: through `index` (None: the table itself), looked up
    with `condition` (None: the index is walked whole)."""

    table: str | None  # None when the plan does not say (a bitmap's index)
    index: str | None
    condition: str | None


def problems(name: str, accesses: list[Access]) -> list[str]:
    """What is wrong with the reads of statement `name`'s plan, if anything."""
    allowed = PLANS[name]
    found = []
    for access in accesses:
        if access.table is not None and access.table.startswith("an alias"):
            found.append(f"reads {access.table} (name it in ALIASES or NOT_TABLES)")
        elif access.index is None:
            if access.table in BIG:
                found.append(f"reads {access.table} whole")
        elif (index := LOGICAL.get(access.index, access.index)) not in allowed:
            found.append(f"reads {index}, not one of {sorted(allowed)}")
        elif index in KEY_LED and "correlate" not in (access.condition or ""):
            found.append(f"reads {index} without the key's correlate (a provider's whole queue)")
        elif access.condition is None and index not in PARTIAL:
            found.append(f"walks {index} whole")
    return found


# SQLite: EXPLAIN QUERY PLAN details name a table by its alias in the statement
ALIASES = {
    "d": "deliveries",
    "e": "deliveries",
    "f": "deliveries",
    "s": "deliveries",
    "c": "deliveries",
    "b": "deliveries",
    "deliveries": "deliveries",
    "ev": "events",
    "u": "events",
    "events": "events",
    "tickets": "tickets",
    "t": "tickets",
    "attempts": "attempts",
    "dedupe": "dedupe",
    "dd": "dedupe",
}
NOT_TABLES = {
    "o",  # oldest_unrouted
    "provider_holds",
    "rate_buckets",
    "json_each",
    "working",
    "w",
    "due",
    "wakeups",
    "computed",
    "listed",
    "later",
}
_DETAIL = re.compile(
    r"^(?:SEARCH|SCAN) (?P<alias>\S+)"
    r"(?: USING (?:COVERING )?(?:INDEX (?P<index>\S+)|(?P<key>(?:INTEGER )?PRIMARY KEY)))?"
    r"(?: \((?P<condition>.*)\))?"
)


def sqlite_accesses(details: list[str]) -> list[Access]:
    accesses = []
    for detail in details:
        match = _DETAIL.match(detail)
        if match is None or match["alias"] in NOT_TABLES:
            continue
        table = ALIASES.get(match["alias"], f"an alias this test does not know: {match['alias']}")
        index = match["index"]
        if match["key"] is not None:  # the rowid of deliveries, or tickets' own key
            index = {"deliveries": "deliveries.seq", "tickets": "tickets.key"}.get(table, table)
        whole = detail.startswith("SCAN")
        accesses.append(Access(table, index, None if whole else match["condition"] or ""))
    return accesses


def postgres_accesses(node: Mapping[str, Any]) -> Iterator[Access]:
    kind = node["Node Type"]
    if kind == "Seq Scan":
        yield Access(node["Relation Name"], None, None)
    elif kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
        yield Access(node.get("Relation Name"), node["Index Name"], node.get("Index Cond"))
    for child in node.get("Plans", ()):
        yield from postgres_accesses(child)


# -- the stores --------------------------------------------------------------------------------


class Explainer:
    """A filled store of one backend, whose statements' plans it reads."""

    def rows(self, sql: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def check(self, name: str, params: Mapping[str, Any]) -> list[str]:
        """Each problem of the statement's plans, with the plan, as a failure names it."""
        raise NotImplementedError


class SQLiteExplainer(Explainer):
    def __init__(self, path: Path) -> None:
        self.connection = sqlite3.connect(path, isolation_level=None)
        self.connection.row_factory = sqlite3.Row
        self.connection.execute("BEGIN")
        for statement in backlog_sql():
            self.connection.execute(statement)
        self.connection.execute("COMMIT")

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return [dict(row) for row in self.connection.execute(sql)]

    def check(self, name: str, params: Mapping[str, Any]) -> list[str]:
        sql = STATEMENTS["sqlite"][name]
        if not sql:
            return []
        bound = {k: json.dumps(v) if isinstance(v, list) else v for k, v in params.items()}
        plan = self.connection.execute(f"EXPLAIN QUERY PLAN {sql}", bound).fetchall()
        details = [row["detail"] for row in plan]
        found = problems(name, sqlite_accesses(details))
        shown = "\n".join(f"    {detail}" for detail in details)
        return [f"{name} (SQLite) {problem}; its plan:\n{shown}" for problem in found]


# The backlog as the planner last saw it at a burst: its events not routed yet, none of its
# deliveries made (the statistics of a worker starting on a burst, which autovacuum, or
# bridge.store.statistics, refreshes only once a tenth of each table has changed).
AT_A_BURST = [
    "CREATE TEMP TABLE held AS SELECT * FROM deliveries WHERE status IN {unfinished}",
    "DELETE FROM deliveries WHERE seq IN (SELECT seq FROM held)",
    "CREATE TEMP TABLE routed AS SELECT id, routed_at FROM events WHERE status = 'accepted'",
    "UPDATE events SET routed_at = NULL WHERE status = 'accepted'",
    "ANALYZE",
    "INSERT INTO deliveries SELECT * FROM held",
    "UPDATE events AS e SET routed_at = r.routed_at FROM routed AS r WHERE e.id = r.id",
]


class PostgresExplainer(Explainer):
    def __init__(self, url: str, *, analyzed: str) -> None:
        """`analyzed`: "filled" (statistics of the backlog as it is) or "at a burst"."""
        self.connection = psycopg.connect(url, autocommit=True, row_factory=dict_row)
        with self.connection.transaction():
            for statement in backlog_sql():
                self.connection.execute(statement.encode())
        if analyzed == "filled":
            self.connection.execute(b"ANALYZE")
            return
        unfinished = "('pending', 'waiting', 'in_flight')"
        for statement in AT_A_BURST:
            self.connection.execute(statement.format(unfinished=unfinished).encode())

    def rows(self, sql: str) -> list[dict[str, Any]]:
        return self.connection.execute(sql.encode()).fetchall()

    def check(self, name: str, params: Mapping[str, Any]) -> list[str]:
        sql = STATEMENTS["postgres"][name]
        if not sql:
            return []
        found = []
        for mode, explain in (("custom", self._custom), ("prepared", self._prepared)):
            plan, text = explain(sql, params)
            for problem in problems(name, list(postgres_accesses(plan))):
                found.append(f"{name} (PostgreSQL, {mode} plan) {problem}; its plan:\n{text}")
        return found

    def _custom(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, str]:
        """The plan for these values (an unnamed statement is planned with them)."""
        [row] = self.connection.execute(f"EXPLAIN (FORMAT JSON) {sql}", params).fetchall()
        text = self.connection.execute(f"EXPLAIN (COSTS OFF) {sql}", params).fetchall()
        return row["QUERY PLAN"][0]["Plan"], _shown(text)

    def _prepared(self, sql: str, params: Mapping[str, Any]) -> tuple[Any, str]:
        """The plan a prepared statement uses from its sixth run (PostgreSQL plans the first
        five for their values, then keeps a generic plan unless it costs more), as psycopg
        prepares a statement from its fifth run. The runs are rolled back."""
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match[1] not in names:
                names.append(match[1])
            return f"${names.index(match[1]) + 1}"

        numbered = re.sub(r"%\((\w+)\)s", number, sql)
        arguments = [params[n] for n in names]
        execute = "EXECUTE plan_check"
        if names:
            execute += f"({', '.join('%s' for _ in names)})"
        cursor = psycopg.ClientCursor(self.connection)
        cursor.execute(f"PREPARE plan_check AS {numbered}".encode())
        try:
            with self.connection.transaction(force_rollback=True):
                for _ in range(5):
                    cursor.execute(execute, arguments)
                cursor.execute(f"EXPLAIN (FORMAT JSON) {execute}", arguments)
                [row] = cursor.fetchall()
                cursor.execute(f"EXPLAIN (COSTS OFF) {execute}", arguments)
                text = _shown(cursor.fetchall())
        finally:
            cursor.execute(b"DEALLOCATE plan_check")
        plan = (row["QUERY PLAN"] if isinstance(row, dict) else row[0])[0]["Plan"]
        return plan, text


def _shown(rows: list[Any]) -> str:
    lines = (row["QUERY PLAN"] if isinstance(row, dict) else row[0] for row in rows)
    return "\n".join(f"    {line}" for line in lines)


async def _migrated(store: Store) -> None:
    """Open (which applies the migrations) and close: the plans are the database's."""
    await store.open()
    await store.close()


@pytest.fixture(
    scope="module",
    params=[
        "sqlite",
        "postgresql",
        "postgresql analyzed at a burst",
    ],
)
def explainer(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Explainer]:
    """A store of each backend with the backlog, and what explains its statements."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("plans") / "bridge.db"
        asyncio.run(_migrated(SQLiteStore(path)))
        sqlite_explainer = SQLiteExplainer(path)
        try:
            yield sqlite_explainer
        finally:
            sqlite_explainer.connection.close()
        return
    with scratch_schema() as url:
        asyncio.run(_migrated(PostgresStore(url, max_connections=1)))
        analyzed = "at a burst" if request.param.endswith("burst") else "filled"
        postgres_explainer = PostgresExplainer(url, analyzed=analyzed)
        try:
            yield postgres_explainer
        finally:
            postgres_explainer.connection.close()


# -- the tests ---------------------------------------------------------------------------------


def test_every_per_event_statement_reads_only_what_it_touches(explainer: Explainer) -> None:
    params = samples(explainer.rows)
    found = []
    for name in PLANS:
        found += explainer.check(name, params[name])
    assert not found, "\n\n".join(found)


def test_every_statement_is_held_here_or_says_why_not() -> None:
    runs = re.compile(r"^\s*(SELECT|WITH|UPDATE|INSERT|DELETE)\b", re.IGNORECASE)
    statements = {
        name
        for rendered in STATEMENTS.values()
        for name, sql in rendered.items()
        if runs.match(sql)
    }
    pieces = {"working_providers"}  # a CTE's definition, inside next_wakeup and the claims
    unclassified = statements - set(PLANS) - set(NOT_PER_EVENT) - pieces
    assert not unclassified, (
        f"say in PLANS which indexes {sorted(unclassified)} may read (or in NOT_PER_EVENT why "
        "they do not run per event)"
    )
    assert not set(PLANS) & set(NOT_PER_EVENT)
    assert set(PLANS) | set(NOT_PER_EVENT) <= set(STATEMENTS["sqlite"])
