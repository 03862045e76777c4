"""The product's store as a scenario sees it from outside, on either backend: its URL, counts
read beside the product's processes, a drain's span in the store's own timestamps, history
copied in, and its removal. SQLite is a file in the round's directory; PostgreSQL a fresh
schema of the run's database, dropped after the round.

The SQL is written once; what differs between the two is the few named pieces in DIALECTS.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scenarios.common import Skipped


@dataclass(frozen=True, kw_only=True)
class Dialect:
    name: str
    series: str  # a CTE n(i) of 1..{count}
    padded: str  # {prefix} and n.i zero-padded to 9 digits, as text
    columns: str  # the columns of table {table}, in order
    settle: str  # after history is copied in: what the database would have done over its time


DIALECTS = {
    "SQLite": Dialect(
        name="SQLite",
        series="n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {count})",
        padded="printf('{prefix}%09d', n.i)",
        columns="SELECT name FROM pragma_table_info('{table}') ORDER BY cid",
        settle="",  # the product never runs ANALYZE on SQLite, so neither does its history
    ),
    "PostgreSQL": Dialect(
        name="PostgreSQL",
        series="n(i) AS (SELECT generate_series(1, {count}))",
        padded="('{prefix}' || lpad(n.i::text, 9, '0'))",
        columns=(
            "SELECT column_name FROM information_schema.columns WHERE table_name = '{table}'"
            " AND table_schema = current_schema() ORDER BY ordinal_position"
        ),
        # a history accumulated over months has been analyzed by autovacuum as it grew; one
        # copied in a second has not, and plans made on the empty tables' statistics would
        # be measured instead of the history
        settle="ANALYZE",
    ),
}


class Database:
    """One store: `url` for the product's processes; reads and history from here."""

    def __init__(self, url: str, dialect: Dialect, connect: Callable[[], Any]) -> None:
        self.url = url
        self.dialect = dialect
        self._connect = connect

    @property
    def backend(self) -> str:
        return self.dialect.name

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        connection = self._connect()
        try:
            yield connection
            connection.commit()
        finally:
            connection.close()

    def count(self, sql: str) -> int:
        """One integer, read beside the product's writers."""
        with self._connection() as connection:
            value = connection.execute(sql).fetchone()[0]
        return int(value or 0)

    def span(self, *, since: float) -> float:
        """Seconds from the first routing to the last attempt's end, of what happened after
        `since` (epoch seconds), in the store's own clock."""
        with self._connection() as connection:
            (first,) = connection.execute(
                f"SELECT min(routed_at) FROM events WHERE routed_at >= {since!r}"
            ).fetchone()
            (last,) = connection.execute(
                f"SELECT max(started_at + duration) FROM attempts WHERE started_at >= {since!r}"
            ).fetchone()
        return float(last - first) if first is not None and last is not None else 0.0

    def copy_lifecycle(self, count: int) -> None:
        """`count` copies, with new ids and older, of the one finished lifecycle in the store:
        each event evh_<i>, its delivery dlh_<i> keyed bench:evh_<i>, its attempt, its entry
        in the ticket map and its dedupe key."""
        dialect = self.dialect

        def padded(prefix: str) -> str:
            return dialect.padded.format(prefix=prefix)

        copies: dict[str, dict[str, str | None]] = {  # column -> its value (None: generated)
            "events": {
                "id": padded("evh_"),
                "received_at": "s.received_at - 86400 + n.i * 1e-3",
                "routed_at": "s.routed_at - 86400 + n.i * 1e-3",
                "dedupe_key": padded("history-"),
            },
            "deliveries": {
                "seq": None,
                "id": padded("dlh_"),
                "event_id": padded("evh_"),
                "correlate": padded("bench:evh_"),
                "event_received_at": "s.event_received_at - 86400 + n.i * 1e-3",
            },
            "attempts": {"id": None, "delivery_id": padded("dlh_")},
            "tickets": {"correlate": padded("bench:evh_")},
            "dedupe": {
                "key": padded("history-"),
                "event_id": padded("evh_"),
                "created_at": "s.created_at - 86400 + n.i * 1e-3",
            },
        }
        with self._connection() as connection:
            for table, changed in copies.items():
                found = connection.execute(dialect.columns.format(table=table)).fetchall()
                kept = [c for (c,) in found if changed.get(c, "") is not None]
                values = [changed.get(c) or f"s.{c}" for c in kept]
                connection.execute(
                    f"WITH RECURSIVE {dialect.series.format(count=int(count))} "
                    f"INSERT INTO {table} ({', '.join(kept)}) "
                    f"SELECT {', '.join(values)} FROM n, (SELECT * FROM {table} LIMIT 1) AS s"
                )
        if dialect.settle:
            with self._connection() as connection:
                connection.autocommit = True  # PostgreSQL's ANALYZE of every table at once
                connection.execute(dialect.settle)


def sqlite_file(path: Path) -> Database:
    return Database(
        f"sqlite:///{path}",
        DIALECTS["SQLite"],
        lambda: sqlite3.connect(path, timeout=10),
    )


def postgres_schemas(url: str) -> Callable[[], tuple[Database, Callable[[], None]]]:
    """A maker of fresh schemas of the database at `url`: each call creates one and returns
    it with its dropper. Skipped when no PostgreSQL answers there."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        raise Skipped(f"no PostgreSQL at {url}: {str(exc).strip().splitlines()[0]}") from None

    def make() -> tuple[Database, Callable[[], None]]:
        schema = f"bench_{secrets.token_hex(4)}"
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")

        def drop() -> None:
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

        joiner = "&" if "?" in url else "?"
        schema_url = f"{url}{joiner}options=-csearch_path%3D{schema}"
        database = Database(schema_url, DIALECTS["PostgreSQL"], lambda: psycopg.connect(schema_url))
        return database, drop

    return make
