"""Rule conditions (DESIGN §2.3): compile a rule's raw `when` mapping once, check it per event.

A mapping's entries are ANDed. A key is an event path (bridge.routing.paths) or a combinator:
`all: [mapping, ...]`, `any: [mapping, ...]`, `not: mapping` (or a list: not all of them). A
scalar or list value means equality; a mapping value is a set of operators that must all hold.
Operators compare with JSON semantics: true is not 1, 1 equals 1.0, ABSENT equals nothing.

compile_condition reports every problem it finds (appending, never raising) with the file, line
and YAML path of the offending key; a condition compiled with problems must not be used.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

from bridge.config.model import Config, DocPath
from bridge.exceptions import Problem
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
            return _BUILDERS[name](expected)
        except _BadOperand as exc:
            self.problem(at, f"{label or f'`{name}`'} {exc}")
            return None

    def schema(self, expected: Any) -> Callable[[Any], bool]:
        if isinstance(expected, str):
            file = self.config.rules_dir / expected
            try:
                document = json.loads(file.read_text(encoding="utf-8"))
            except OSError as exc:
                raise _BadOperand(
                    f"expects a readable file: {file}: {exc.strerror or exc}"
                ) from None
            except ValueError as exc:
                raise _BadOperand(f"expects a JSON file: {file}: {exc}") from None
            return _schema_test(document)
        return _schema_test(expected)


# -- what the operators mean ------------------------------------------------------------------


class _BadOperand(ValueError):
    """An operator's expected value cannot be used; the message says why."""


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_NUMBER_TEXT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_NULL_KEY = ("null",)


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON means it: true != 1, 1 == 1.0, lists and objects compared deeply."""
    kind = type(a)
    if kind is type(b) and kind in _SCALAR_TYPES:
        return bool(a == b)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    if isinstance(a, int | float | str) and isinstance(b, int | float | str):
        return isinstance(a, str) == isinstance(b, str) and bool(a == b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return len(a) == len(b) and all(k in b and json_equal(v, b[k]) for k, v in a.items())
    return False


def equality_key(value: Any) -> Hashable | None:
    """A key such that equality_key(a) == equality_key(b) exactly when json_equal(a, b), for
    scalars; None for what has no key (lists, mappings, NaN, ABSENT)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return value if value == value else None
    return _NULL_KEY if value is None else None


def to_jsonable(value: Any) -> Any:
    """`value` made json.dumps-able: ABSENT as None, dates as ISO text, other objects as str."""
    if value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is ABSENT:
        return None
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    return str(value)


def _json_operand(value: Any) -> None:
    if isinstance(value, date):
        raise _BadOperand(f"expects JSON values, but YAML read {value} as a date; quote it")
    if isinstance(value, list):
        for item in value:
            _json_operand(item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _BadOperand(f"expects JSON values, but mapping key {key!r} is not a string")
            _json_operand(item)
    elif type(value) not in _SCALAR_TYPES:
        raise _BadOperand(f"expects JSON values, but {value!r} is not one")


def _number(value: Any) -> int | float | None:
    """A number, or a string that is the text of a finite number (form fields); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str) and len(value) < 400 and _NUMBER_TEXT.fullmatch(value):
        if value.lstrip("+-").isdigit():
            return int(value)
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _moment(value: Any) -> datetime | None:
    """An aware UTC datetime from an ISO-8601 string (Z allowed, naive is UTC) or a date."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and 8 <= len(value) <= 64 and value[:4].isdigit():
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


Test = Callable[[Any], bool]


def _eq(expected: Any) -> Test:
    _json_operand(expected)
    if isinstance(expected, str):
        return lambda actual: isinstance(actual, str) and actual == expected
    return lambda actual: json_equal(actual, expected)


def _in(expected: Any) -> Test:
    if not isinstance(expected, list):
        raise _BadOperand(f"expects a list, got {expected!r}")
    _json_operand(expected)
    keys = {key for key in map(equality_key, expected) if key is not None}
    others = [item for item in expected if equality_key(item) is None]

    def holds(actual: Any) -> bool:
        key = equality_key(actual)
        return (key is not None and key in keys) or any(json_equal(actual, o) for o in others)

    return holds


def _negated(build: Callable[[Any], Test]) -> Callable[[Any], Test]:
    def negate(expected: Any) -> Test:
        test = build(expected)
        return lambda actual: not test(actual)

    return negate


def _ordering(compare: Callable[[Any, Any], bool]) -> Callable[[Any], Test]:
    def build(expected: Any) -> Test:
        if isinstance(expected, int | float) and not isinstance(expected, bool):
            if expected != expected:
                raise _BadOperand("expects a number, not NaN")
            return lambda actual: (n := _number(actual)) is not None and compare(n, expected)
        moment = _moment(expected)
        if moment is None:
            raise _BadOperand(f"expects a number or an ISO-8601 date-time, got {expected!r}")
        return lambda actual: (m := _moment(actual)) is not None and compare(m, moment)

    return build


def _regex(expected: Any) -> Test:
    if not isinstance(expected, str):
        raise _BadOperand(f"expects a pattern string, got {expected!r}")
    try:
        pattern = re.compile(expected)
    except re.error as exc:
        raise _BadOperand(f"expects a valid regular expression: {exc}") from None
    return lambda actual: (t := _text(actual)) is not None and pattern.search(t) is not None


def _contains(expected: Any) -> Test:
    _json_operand(expected)

    def holds(actual: Any) -> bool:
        if isinstance(actual, str):
            return isinstance(expected, str) and expected in actual
        if isinstance(actual, list | tuple):
            return any(json_equal(item, expected) for item in actual)
        return False

    return holds


def _affix(method: Callable[[str, str], bool]) -> Callable[[Any], Test]:
    def build(expected: Any) -> Test:
        if not isinstance(expected, str):
            raise _BadOperand(f"expects a string (quote it in YAML), got {expected!r}")
        return lambda actual: (t := _text(actual)) is not None and method(t, expected)

    return build


def _exists(expected: Any) -> Test:
    if not isinstance(expected, bool):
        raise _BadOperand(f"expects true or false, got {expected!r}")
    return lambda actual: (actual is not ABSENT) is expected


def _schema_test(schema: Any) -> Test:
    if not isinstance(schema, Mapping | bool):
        raise _BadOperand("expects a JSON Schema mapping or the path of a JSON file")
    _json_operand(schema)
    plain = json.loads(json.dumps(schema))
    try:
        Draft202012Validator.check_schema(plain)
    except SchemaError as exc:
        raise _BadOperand(
            f"expects a valid JSON Schema: at {exc.json_path}: {exc.message}"
        ) from None
    validator = Draft202012Validator(plain, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def holds(actual: Any) -> bool:
        try:
            return actual is not ABSENT and validator.is_valid(actual)
        except Unresolvable:  # a $ref to another document: not fetched, so it cannot hold
            return False

    return holds


_BUILDERS: dict[str, Callable[[Any], Test]] = {
    "eq": _eq,
    "ne": _negated(_eq),
    "in": _in,
    "not_in": _negated(_in),
    "gt": _ordering(operator.gt),
    "gte": _ordering(operator.ge),
    "lt": _ordering(operator.lt),
    "lte": _ordering(operator.le),
    "regex": _regex,
    "contains": _contains,
    "startswith": _affix(str.startswith),
    "endswith": _affix(str.endswith),
    "exists": _exists,
}
