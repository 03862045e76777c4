"""What condition operators mean (DESIGN §2.3): JSON equality, ordering, regex, schema, etc.

BUILDERS maps an operator name to a function that checks its expected value once (raising
BadOperand with the reason when it cannot be used) and returns the test applied to each actual
value; `schema` is built by schema_test, once bridge.routing.conditions has read any file it names.
json_equal / equality_key / to_jsonable give the JSON semantics the rest of routing shares.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

from bridge.routing.paths import ABSENT


class BadOperand(ValueError):
    """An operator's expected value cannot be used; the message says why. A message about
    the value as a whole is written around it: `before`, the value, `after`; `describe`
    writes it with the value shown as the caller shows values (configuration problems
    shorten them and never show one taken from the environment)."""

    def __init__(self, before: str, *, value: Any = ABSENT, after: str = "") -> None:
        self.before, self.value, self.after = before, value, after
        super().__init__(self.describe(repr))

    def describe(self, show: Callable[[Any], str]) -> str:
        if self.value is ABSENT:
            return self.before
        return f"{self.before}{show(self.value)}{self.after}"


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
        raise BadOperand(f"expects JSON values, but YAML read {value} as a date; quote it")
    if isinstance(value, list):
        for item in value:
            _json_operand(item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise BadOperand(f"expects JSON values, but mapping key {key!r} is not a string")
            _json_operand(item)
    elif type(value) not in _SCALAR_TYPES:
        raise BadOperand(f"expects JSON values, but {value!r} is not one")


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
        raise BadOperand("expects a list, not ", value=expected)
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
                raise BadOperand("expects a number, not NaN")
            return lambda actual: (n := _number(actual)) is not None and compare(n, expected)
        moment = _moment(expected)
        if moment is None:
            raise BadOperand("expects a number or an ISO-8601 date-time, not ", value=expected)
        return lambda actual: (m := _moment(actual)) is not None and compare(m, moment)

    return build


def _regex(expected: Any) -> Test:
    if not isinstance(expected, str):
        raise BadOperand("expects a pattern string, not ", value=expected)
    try:
        pattern = re.compile(expected)
    except re.error as exc:
        raise BadOperand("", value=expected, after=f" does not compile: {exc}") from None
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
            raise BadOperand("expects a string (quote it in YAML), not ", value=expected)
        return lambda actual: (t := _text(actual)) is not None and method(t, expected)

    return build


def _exists(expected: Any) -> Test:
    if not isinstance(expected, bool):
        raise BadOperand("expects true or false, not ", value=expected)
    return lambda actual: (actual is not ABSENT) is expected


def schema_test(schema: Any) -> Test:
    if not isinstance(schema, Mapping | bool):
        raise BadOperand("expects a JSON Schema mapping or the path of a JSON file")
    _json_operand(schema)
    plain = json.loads(json.dumps(schema))
    try:
        Draft202012Validator.check_schema(plain)
    except SchemaError as exc:
        raise BadOperand(
            f"expects a valid JSON Schema: at {exc.json_path}: {exc.message}"
        ) from None
    validator = Draft202012Validator(plain, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def holds(actual: Any) -> bool:
        try:
            return actual is not ABSENT and validator.is_valid(actual)
        except Unresolvable:  # a $ref to another document: not fetched, so it cannot hold
            return False

    return holds


BUILDERS: dict[str, Callable[[Any], Test]] = {
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
