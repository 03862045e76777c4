"""The store's SQL as data: the named statements of queries.sql, rendered for one dialect.

Every difference between SQLite and PostgreSQL that a statement meets is in the table below
(DIALECTS), and nowhere else: how a parameter is written, skip-locked claims and row locks,
list membership, flooring to a bucket number, a lateral join. The few statements that exist
on one side only (the advisory locks of PostgreSQL) are variants in queries.sql,
`-- name: NAME (postgres)`; an empty body means there is nothing to run on that side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from bridge.exceptions import StoreError

_HEADER = re.compile(r"^-- name: (\w+)(?: \((\w+)\))?\s*$")
_PIECE = re.compile(r"\{(\w+)(?::([^{}]*))?\}")
_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


@dataclass(frozen=True, kw_only=True)
class Dialect:
    name: str
    placeholder: str  # how `:name` is written, with {name}
    fragments: Mapping[str, str]  # piece name -> text, with {arg} where the piece takes one


SQLITE = Dialect(
    name="sqlite",
    placeholder=":{name}",
    fragments={
        "skip_locked": "",  # one writer at a time: nothing to skip
        "skip_locked_of": "",
        "for_update": "",
        "in_list": "IN (SELECT value FROM json_each(:{arg}))",  # a list goes as JSON text
        "not_in_list": "NOT IN (SELECT value FROM json_each(:{arg}))",
        "floor": "CAST(({arg}) AS INTEGER)",  # of a value >= 0; needs no math functions
        "each_row_joins": "JOIN deliveries AS d ON {{arg}}",  # SQLite loops over rows anyway
    },
)
POSTGRES = Dialect(
    name="postgres",
    placeholder="%({name})s",
    fragments={
        "skip_locked": "FOR UPDATE SKIP LOCKED",
        "skip_locked_of": "FOR UPDATE OF {arg} SKIP LOCKED",
        "for_update": "FOR UPDATE",
        "in_list": "= ANY(:{arg}::text[])",
        "not_in_list": "<> ALL(:{arg}::text[])",
        "floor": "floor({arg})::bigint",
        # deliveries matching {arg}, looked up for each row before it (a nested loop, whatever
        # the statistics say; a hash join would read a whole index it believes small)
        "each_row_joins": (
            "CROSS JOIN LATERAL (SELECT d.seq FROM deliveries AS d WHERE {{arg}} OFFSET 0) AS d"
        ),
    },
)
DIALECTS = {dialect.name: dialect for dialect in (SQLITE, POSTGRES)}


def parse(text: str) -> dict[tuple[str, str | None], str]:
    """(name, dialect or None) -> body, comments and blank edges left out."""
    blocks: dict[tuple[str, str | None], list[str]] = {}
    body: list[str] | None = None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header is not None:
            key = (header.group(1), header.group(2))
            if key in blocks:
                raise StoreError(f"queries.sql names {key[0]} twice")
            if key[1] is not None and key[1] not in DIALECTS:
                raise StoreError(f"queries.sql: unknown dialect {key[1]!r} for {key[0]}")
            body = blocks[key] = []
        elif body is not None and not line.lstrip().startswith("--"):
            body.append(line)
    return {key: "\n".join(lines).strip() for key, lines in blocks.items()}


def render(blocks: Mapping[tuple[str, str | None], str], dialect: Dialect) -> dict[str, str]:
    """Every named statement as `dialect` runs it."""

    def expand(name: str, arg: str | None, seen: tuple[str, ...]) -> str:
        if name in seen:
            raise StoreError(f"queries.sql: {' -> '.join((*seen, name))} is a cycle")
        if (name, dialect.name) in blocks:
            text = blocks[(name, dialect.name)]
        elif (name, None) in blocks:
            text = blocks[(name, None)]
        elif name in dialect.fragments:
            text = dialect.fragments[name]
        else:
            raise StoreError(f"queries.sql: no statement or fragment {name!r}")
        if arg is not None:
            text = text.replace("{arg}", arg)
        return _PIECE.sub(lambda m: expand(m.group(1), m.group(2), (*seen, name)), text)

    rendered = {}
    for name in sorted({name for name, _ in blocks}):
        if any("{arg}" in text for (n, _), text in blocks.items() if n == name):
            continue  # a piece that takes an argument: only ever part of another
        sql = expand(name, None, ())
        rendered[name] = _PARAMETER.sub(lambda m: dialect.placeholder.format(name=m.group(1)), sql)
    return rendered


_BLOCKS = parse(resources.files("bridge.store").joinpath("queries.sql").read_text("utf-8"))
STATEMENTS = {name: render(_BLOCKS, dialect) for name, dialect in DIALECTS.items()}
