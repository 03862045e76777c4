"""The store: the Store interface, its two backends (chosen by URL with open_store) and a fake.

Every operation is written once; the drivers only run it:

    base.py         the Store interface (what the rest of bridge calls; the records it keeps
                    are bridge.records)
    store.py        SQLStore: the Store over steps, for both databases
      intake.py       ingest, claim_unrouted, save_routing
      claims.py       claim_due (budget per provider, token buckets), leases, next_wakeup
      queues.py       a key's queue: settle, release, kill followers, event status; finish, retry
      pacing.py       provider holds, token buckets (buckets.py: the bucket's arithmetic)
      reading.py      what operators read, counts (counts.py: rows -> QueueStats, Activity)
      retention.py    purge, dropping old bodies
      autovacuum.py   where PostgreSQL's autovacuum is off, what it would do
    steps.py        a step: a generator that yields Query/Script and is sent back Result
    queries.sql     every statement, by name, with :named parameters
    statements.py   queries.sql rendered per dialect; the table of what differs
    rows.py         records <-> rows and parameters
    schema.py       the migration runner (a step); migrations/<dialect>/NNNN_name.sql
    writer.py       group commit: concurrent writes share one transaction
    sqlite.py       driver: steps on one writer thread (savepoint each), reads on another
    postgres.py     driver: steps on psycopg's async pool, in a transaction each
    sqlite_connection.py, postgres_connection.py   connecting, and mapping the errors
    memory.py       the fake: the same steps on an in-memory SQLite database, inline
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from bridge.exceptions import StoreError
from bridge.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str, *, create: bool = True) -> Store:
    """The Store for `url`, not yet opened (await its open()).

    With `create=False` (the commands that only read or steer what is stored), a SQLite file
    that does not exist is a StoreError instead of a new, empty database.

    - `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, or a bare path: SQLite;
      `?synchronous=normal` trades the last commits before a power cut for speed
      (default `full`).
    - `postgresql://user:password@host:5432/dbname?...` or `postgres://...`: PostgreSQL,
      the URL passed to libpq as it is (`sslmode`, `options=-csearch_path%3Dschema`, ...).
    """
    if "://" not in url:
        return _sqlite(url, {}, create=create)
    parts = urlsplit(url)
    if parts.scheme in ("postgresql", "postgres"):
        return _postgres(url)
    if parts.scheme != "sqlite":
        raise StoreError(
            f"unknown store URL scheme {parts.scheme!r} (expected sqlite:// or postgresql://)"
        )
    if parts.netloc:
        raise StoreError(
            f"store URL {url!r} has a host; write sqlite:///relative.db or sqlite:////abs.db"
        )
    path = unquote(parts.path[1:])  # sqlite:///x.db -> x.db, sqlite:////x.db -> /x.db
    if not path:
        raise StoreError(f"store URL {url!r} has no path")
    try:
        options = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise StoreError(f"store URL {url!r}: bad query string") from exc
    return _sqlite(path, options, create=create)


def _sqlite(path: str, options: dict[str, list[str]], *, create: bool) -> Store:
    from bridge.store.sqlite import SQLiteStore

    unknown = sorted(set(options) - {"synchronous"})
    if unknown:
        raise StoreError(f"unknown SQLite store option(s): {', '.join(unknown)}")
    synchronous = options.get("synchronous", ["full"])
    if len(synchronous) != 1:
        raise StoreError("synchronous is given more than once")
    if not create and not Path(path).is_file():
        raise StoreError(
            f"no database at {path}: nothing has been stored there "
            "(point --db or BRIDGE_DATABASE_URL at the service's database)"
        )
    return SQLiteStore(Path(path), synchronous=synchronous[0])


def _postgres(url: str) -> Store:
    from bridge.store.postgres import PostgresStore

    return PostgresStore(url)
