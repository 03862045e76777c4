"""Rule conditions (DESIGN §2.3): compile a rule's raw `when` mapping once, check it per event.

A mapping's entries are ANDed. A key is an event path (bridge.routing.paths) or a combinator:
`all: [mapping, ...]`, `any: [mapping, ...]`, `not: mapping` (or a list: not all of them). A
scalar or list value means equality; a mapping value is a set of operators that must all hold.
Operators (their meaning is in bridge.routing.operators) compare with JSON semantics: true is
not 1, 1 equals 1.0, ABSENT equals nothing.

compile_condition reports every problem it finds (appending, never raising) with the file, line
and YAML path of the offending key; a condition compiled with problems must not be used.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.config.model import Config, DocPath
from bridge.exceptions import Problem
from bridge.routing.operators import BUILDERS, BadOperand, schema_test, to_jsonable
from bridge.routing.paths import ABSENT, EventPath, PathError, lookup, parse_path

OPERATORS = (
    "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte",
    "regex", "contains", "startswith", "endswith", "exists", "schema",
)  # fmt: skip
COMBINATORS = ("all", "any", "not")


@dataclass(frozen=True, kw_only=True)
class Failure:
    """Why a condition did not hold: the first failing entry, in written order.

    `path` is the path as written ("any"/"not" for a combinator), `op` the operator ("eq" for
    plain equality). `actual` is the value seen; a missing path gives actual=None, absent=True.
    For `any`, `branches` holds each branch's failure; for `not`, `actual` maps each path of the
    inner condition to the value seen there (absent paths left out)."""

    path: str
    op: str
    expected: Any
    actual: Any
    absent: bool = False
    branches: tuple[Failure, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "op": self.op,
            "expected": to_jsonable(self.expected),
            "actual": to_jsonable(self.actual),
            "absent": self.absent,
        }
        if self.op == "any":
            out["branches"] = [branch.to_json() for branch in self.branches]
        return out


class _Node(Protocol):
    def check(self, context: Mapping[str, Any]) -> Failure | None: ...

    def observe(self, context: Mapping[str, Any], into: dict[str, Any]) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class _Op:
    name: str
    expected: Any  # as written, for the failure
    holds: Callable[[Any], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Test:
    """One path and the operators its value must pass."""

    text: str
    path: EventPath
    ops: tuple[_Op, ...]

    def check(self, context: Mapping[str, Any]) -> Failure | None:
        actual = lookup(context, self.path)
        for op in self.ops:
            if not op.holds(actual):
                absent = actual is ABSENT
                return Failure(
                    path=self.text,
                    op=op.name,
                    expected=op.expected,
                    actual=None if absent else actual,
                    absent=absent,
                )
        return None

    def observe(self, context: Mapping[str, Any], into: dict[str, Any]) -> None:
        actual = lookup(context, self.path)
        if actual is not ABSENT:
            into[self.text] = actual


@dataclass(frozen=True, slots=True, kw_only=True)
class _All:
    entries: tuple[_Node, ...]

    def check(self, context: Mapping[str, Any]) -> Failure | None:
        for entry in self.entries:
            failure = entry.check(context)
            if failure is not None:
                return failure
        return None

    def observe(self, context: Mapping[str, Any], into: dict[str, Any]) -> None:
        for entry in self.entries:
            entry.observe(context, into)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Any:
    branches: tuple[_Node, ...]
    raw: Any

    def check(self, context: Mapping[str, Any]) -> Failure | None:
        failures: list[Failure] = []
        for branch in self.branches:
            failure = branch.check(context)
            if failure is None:
                return None
            failures.append(failure)
        return Failure(
            path="any", op="any", expected=self.raw, actual=None, branches=tuple(failures)
        )

    def observe(self, context: Mapping[str, Any], into: dict[str, Any]) -> None:
        for branch in self.branches:
            branch.observe(context, into)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Not:
    inner: _Node
    raw: Any

    def check(self, context: Mapping[str, Any]) -> Failure | None:
        if self.inner.check(context) is not None:
            return None
        seen: dict[str, Any] = {}
        self.inner.observe(context, seen)
        return Failure(path="not", op="not", expected=self.raw, actual=seen)

    def observe(self, context: Mapping[str, Any], into: dict[str, Any]) -> None:
        self.inner.observe(context, into)


@dataclass(frozen=True, kw_only=True)
class Condition:
    """A compiled `when`: check(context) gives None when it holds, else the first Failure."""

    root: _All

    def check(self, context: Mapping[str, Any]) -> Failure | None:
        return self.root.check(context)

    def equalities(self) -> dict[EventPath, Any]:
        """Path -> value for every equality the whole condition requires (top-level entries and
        those of top-level `all`s): what the matcher's index can use."""
        found: dict[EventPath, Any] = {}
        pending: list[_Node] = [self.root]
        while pending:
            node = pending.pop(0)
            if isinstance(node, _All):
                pending.extend(node.entries)
            elif isinstance(node, _Test):
                for op in node.ops:
                    if op.name == "eq":
                        found.setdefault(node.path, op.expected)
        return found


def compile_condition(
    raw: Mapping[str, Any], *, at: DocPath, config: Config, problems: list[Problem]
) -> Condition:
    """Compile a rule's `when` mapping found at doc path `at`; append every problem found."""
    return Condition(root=_Compiler(config=config, problems=problems).mapping(raw, at))


class _Compiler:
    def __init__(self, *, config: Config, problems: list[Problem]) -> None:
        self.config = config
        self.problems = problems

    def problem(self, at: DocPath, message: str) -> None:
        loc = self.config.locate(at)
        self.problems.append(Problem(file=loc.file, line=loc.line, path=loc.path, message=message))

    def mapping(self, raw: Any, at: DocPath) -> _All:
        if not isinstance(raw, Mapping):
            self.problem(at, "a condition is a mapping of paths (and all/any/not) to values")
            return _All(entries=())
        entries: list[_Node] = []
        for key, value in raw.items():
            here = at + (key if isinstance(key, str | int) else str(key),)
            node = self.entry(key, value, here)
            if node is not None:
                entries.append(node)
        return _All(entries=tuple(entries))

    def entry(self, key: Any, value: Any, at: DocPath) -> _Node | None:
        if key in ("all", "any") or (key == "not" and isinstance(value, list)):
            if not isinstance(value, list) or not value:
                self.problem(at, f"`{key}` takes a non-empty list of conditions")
                return None
            branches = tuple(self.mapping(item, at + (i,)) for i, item in enumerate(value))
            if key == "any":
                return _Any(branches=branches, raw=value)
            node = _All(entries=branches)
            return _Not(inner=node, raw=value) if key == "not" else node
        if key == "not":
            if not isinstance(value, Mapping) or not value:
                self.problem(at, "`not` takes a non-empty condition mapping (or a list of them)")
                return None
            return _Not(inner=self.mapping(value, at), raw=value)
        if not isinstance(key, str):
            self.problem(at, f"a condition key is a path or {'/'.join(COMBINATORS)}, not {key!r}")
            return None
        path: EventPath | None = None
        try:
            path = parse_path(key)
        except PathError as exc:
            self.problem(at, str(exc))
        if path and path[0] == "headers" and len(path) > 1:
            name = path[1]
            if isinstance(name, str) and name != name.lower():
                self.problem(at, f"header names are lower-case: write headers.{name.lower()}")
        ops = self.operators(value, at)
        if path is None or ops is None:
            return None
        return _Test(text=key, path=path, ops=ops)

    def operators(self, value: Any, at: DocPath) -> tuple[_Op, ...] | None:
        if not isinstance(value, Mapping):
            holds = self.build("eq", value, at, label="equality")
            return None if holds is None else (_Op(name="eq", expected=value, holds=holds),)
        known = ", ".join(OPERATORS)
        if not any(name in OPERATORS for name in value):
            keys = ", ".join(repr(name) for name in value) or "nothing"
            self.problem(
                at, f"no operator in this mapping ({keys}; operators are {known}); "
                "to compare with a mapping use `eq: {...}`",
            )  # fmt: skip
            return None
        ops: list[_Op] = []
        ok = True
        for name, expected in value.items():
            here = at + (name if isinstance(name, str | int) else str(name),)
            if name not in OPERATORS:
                self.problem(here, f"unknown operator {name!r}; known operators: {known}")
                ok = False
                continue
            holds = self.build(name, expected, here)
            if holds is None:
                ok = False
            else:
                ops.append(_Op(name=name, expected=expected, holds=holds))
        return tuple(ops) if ok else None

    def build(
        self, name: str, expected: Any, at: DocPath, *, label: str | None = None
    ) -> Callable[[Any], bool] | None:
        try:
            if name == "schema":
                return self.schema(expected)
            return BUILDERS[name](expected)
        except BadOperand as exc:
            shown = exc.describe(lambda value: self.config.show(value, at))
            self.problem(at, f"{label or f'`{name}`'} {shown}")
            return None

    def schema(self, expected: Any) -> Callable[[Any], bool]:
        if isinstance(expected, str):
            file = self.config.rules_dir / expected
            try:
                document = json.loads(file.read_text(encoding="utf-8"))
            except OSError as exc:
                raise BadOperand(
                    f"expects a readable file: {file}: {exc.strerror or exc}"
                ) from None
            except ValueError as exc:
                raise BadOperand(f"expects a JSON file: {file}: {exc}") from None
            return schema_test(document)
        return schema_test(expected)
