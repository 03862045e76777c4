"""Versioned schema migrations for SQLite.

Each migration is a file `bridge/store/migrations/sqlite/NNNN_name.sql`; NNNN is its version.
`apply_migrations` applies the missing ones in order, each in its own transaction together
with its row in `schema_migrations`, and refuses a database that has a version this code
does not know (it was written by a newer ticketbridge).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import resources

from bridge.exceptions import StoreError

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at REAL NOT NULL
)
"""


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migrations shipped with the package, by version."""
    folder = resources.files("bridge.store").joinpath("migrations").joinpath("sqlite")
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


def split_statements(sql: str) -> Iterator[str]:
    """The statements of a migration, one at a time (each must end its line with `;`)."""
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
    leftover = [line for line in buffer.splitlines() if line.strip()]
    if any(not line.lstrip().startswith("--") for line in leftover):
        raise StoreError(f"incomplete SQL statement at the end of a migration: {buffer.strip()}")


def apply_migrations(
    connection: sqlite3.Connection, migrations: Sequence[Migration], *, now: float
) -> list[int]:
    """Apply what is missing; return the versions applied now. sqlite3 errors pass through
    (the caller maps them)."""
    known = {migration.version for migration in migrations}
    connection.execute(_CREATE_TABLE)
    applied = _applied_versions(connection)
    _refuse_unknown(applied - known, known)
    applied_now: list[int] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        connection.execute("BEGIN IMMEDIATE")
        try:
            # another process may have applied it while we waited for the write lock
            applied = _applied_versions(connection)
            if migration.version in applied:
                connection.rollback()
                continue
            for statement in split_statements(migration.sql):
                connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (migration.version, now),
            )
            connection.commit()
        except BaseException:
            if connection.in_transaction:
                connection.rollback()
            raise
        applied_now.append(migration.version)
    return applied_now


def _applied_versions(connection: sqlite3.Connection) -> set[int]:
    return {int(row[0]) for row in connection.execute("SELECT version FROM schema_migrations")}


def _refuse_unknown(unknown: set[int], known: set[int]) -> None:
    if unknown:
        raise StoreError(
            f"the database has schema version {max(unknown)}, which this ticketbridge does not "
            f"know (it knows up to {max(known, default=0)}): it was written by a newer "
            "ticketbridge; run that version or restore a backup"
        )
