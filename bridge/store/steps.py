"""Store operations as sans-I/O steps (gidgethub's and h11's way), so that one operation is
written once for a sync driver (SQLite, on its writer thread) and an async one (PostgreSQL).

A step is a generator: it yields what it needs run (a Query: a statement of queries.sql by
name with its parameters, or a Script of several statements) and is sent back the Result; its
return value is the operation's. Errors of the database are thrown into it, so a step's
`finally` still runs. A driver runs a step to its end with `drive`:

    result = None
    while True:
        try:
            request = step.send(result)      # (or step.throw(error) after a failure)
        except StopIteration as done:
            return done.value
        result = execute(request)            # sync, or awaited
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

from bridge.store.rows import ReadRow

T = TypeVar("T")


@dataclass(frozen=True)
class Query:
    """Run statement `name`: once with `params`, or once per row of `many` (when given)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    many: Sequence[Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class Script:
    """Run the statements of a migration, as written for the driver's dialect."""

    sql: str


@dataclass(frozen=True)
class Result:
    rows: list[ReadRow]  # empty for a statement that returns none
    rowcount: int


Request: TypeAlias = Query | Script
Step: TypeAlias = Generator[Request, Result, T]


def rows(name: str, **params: Any) -> Step[list[ReadRow]]:
    """`yield from rows(...)`: the rows of one statement."""
    return (yield Query(name, params)).rows


def first(name: str, **params: Any) -> Step[ReadRow | None]:
    """`yield from first(...)`: the first row of one statement, or None."""
    found = (yield Query(name, params)).rows
    return found[0] if found else None


def execute(name: str, **params: Any) -> Step[int]:
    """`yield from execute(...)`: how many rows the statement changed."""
    return (yield Query(name, params)).rowcount


def many(name: str, params: Sequence[Mapping[str, Any]]) -> Step[None]:
    if params:
        yield Query(name, many=params)
