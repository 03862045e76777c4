"""Versioned schema migrations for PostgreSQL.

Each migration is a file `bridge/store/migrations/postgres/NNNN_name.sql`; NNNN is its version,
the same numbers as SQLite's for the same change. `apply_migrations` runs while holding a
session-level advisory lock, so that replicas starting at once take turns: the first applies
what is missing, the others then find nothing to do. Each migration runs in its own
transaction together with its row in `schema_migrations`. A database that has a version this
code does not know (written by a newer ticketbridge) is refused.

Tables go to the first schema of the connection's search_path (`?options=-csearch_path%3Dx`
in the URL picks one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import psycopg

from bridge.exceptions import StoreError
from bridge.store.postgres_connection import Connection

# pg_advisory_lock(int, int): its own key space, apart from the per-key locks (one bigint)
MIGRATION_LOCK = (0x7462_7267, 1)  # "tbrg", 1

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    applied_at double precision NOT NULL
)
"""


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migrations shipped with the package, by version."""
    folder = resources.files("bridge.store").joinpath("migrations").joinpath("postgres")
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        prefix = entry.name.split("_", 1)[0]
        if not prefix.isdigit():
            raise StoreError(f"migration {entry.name} does not start with a version number")
        version = int(prefix)
        if version in found:
            raise StoreError(f"migrations {found[version].name} and {entry.name} share a version")
        found[version] = Migration(
            version=version, name=entry.name, sql=entry.read_text(encoding="utf-8")
        )
    return [found[version] for version in sorted(found)]


async def apply_migrations(
    connection: Connection, migrations: Sequence[Migration], *, now: float
) -> list[int]:
    """Apply what is missing, under the migration lock; return the versions applied now.
    `connection` is in autocommit mode; psycopg errors pass through (the caller maps them)."""
    known = {migration.version for migration in migrations}
    await connection.execute("SELECT pg_advisory_lock(%s, %s)", MIGRATION_LOCK)
    try:
        await connection.execute(_CREATE_TABLE)
        applied = await _applied_versions(connection)
        _refuse_unknown(applied - known, known)
        applied_now: list[int] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            async with connection.transaction():
                # no parameters: sent as one simple query, several statements at once
                await connection.execute(migration.sql.encode(), prepare=False)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (migration.version, now),
                )
            applied_now.append(migration.version)
        return applied_now
    finally:
        # a failed unlock leaves the lock to end with the session (the caller closes it)
        with contextlib.suppress(psycopg.Error):
            await connection.execute("SELECT pg_advisory_unlock(%s, %s)", MIGRATION_LOCK)


async def _applied_versions(connection: Connection) -> set[int]:
    rows = await (await connection.execute("SELECT version FROM schema_migrations")).fetchall()
    return {int(row["version"]) for row in rows}


def _refuse_unknown(unknown: set[int], known: set[int]) -> None:
    if unknown:
        raise StoreError(
            f"the database has schema version {max(unknown)}, which this ticketbridge does not "
            f"know (it knows up to {max(known, default=0)}): it was written by a newer "
            "ticketbridge; run that version or restore a backup"
        )
