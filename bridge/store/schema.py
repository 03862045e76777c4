"""Versioned schema migrations, one runner for both databases.

Each migration is a file `migrations/<dialect>/NNNN_name.sql` (the DDL differs by dialect;
the numbers are the same for the same change). `apply_migrations` is a step: under the
migration lock (a session advisory lock on PostgreSQL, so that replicas starting at once take
turns; on SQLite each migration's BEGIN IMMEDIATE is the lock), it applies the missing ones in
order, each in its own transaction with its row in `schema_migrations`, after looking again
whether another process applied it meanwhile. A database with a version this code does not
know (written by a newer ticketbridge) is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from bridge.exceptions import StoreError
from bridge.store.steps import Script, Step, execute, rows


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(dialect: str) -> list[Migration]:
    """The migrations shipped with the package for `dialect` (sqlite, postgres), by version."""
    folder = resources.files("bridge.store").joinpath("migrations").joinpath(dialect)
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


def apply_migrations(migrations: Sequence[Migration], *, now: float) -> Step[list[int]]:
    """Apply what is missing; return the versions applied now. Run on a connection that is
    in no transaction (each migration begins and commits its own)."""
    known = {migration.version for migration in migrations}
    yield from execute("migration_lock")
    try:
        yield from execute("create_schema_migrations")
        applied = yield from _applied_versions()
        _refuse_unknown(applied - known, known)
        applied_now: list[int] = []
        for migration in migrations:
            if migration.version in applied:
                continue
            yield from execute("begin")
            try:
                # another process may have applied it while we waited for the lock
                if migration.version in (yield from _applied_versions()):
                    yield from execute("rollback")
                    continue
                yield Script(migration.sql)
                yield from execute("record_migration", version=migration.version, now=now)
                yield from execute("commit")
            except BaseException:
                with contextlib.suppress(Exception):  # the database may have rolled back itself
                    yield from execute("rollback")
                raise
            applied_now.append(migration.version)
        return applied_now
    finally:
        # a failed unlock leaves the lock to end with the session (the caller closes it)
        with contextlib.suppress(Exception):
            yield from execute("migration_unlock")


def _applied_versions() -> Step[set[int]]:
    return {int(row["version"]) for row in (yield from rows("applied_versions"))}


def _refuse_unknown(unknown: set[int], known: set[int]) -> None:
    if unknown:
        raise StoreError(
            f"the database has schema version {max(unknown)}, which this ticketbridge does not "
            f"know (it knows up to {max(known, default=0)}): it was written by a newer "
            "ticketbridge; run that version or restore a backup"
        )
