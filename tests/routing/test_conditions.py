import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.config.model import Config, Defaults, DocPath, Location
from bridge.exceptions import Problem
from bridge.routing.conditions import Condition, Failure, compile_condition
from bridge.routing.operators import json_equal
from bridge.routing.paths import ABSENT

WHEN: DocPath = ("rules", 2, "when")
FILE = "rules/shop.yaml"


def _locations(raw: Any, at: DocPath, lines: dict[DocPath, Location]) -> None:
    """Locate every node of `raw` on its own line, in document order, as the loader would."""
    lines[at] = Location(file=FILE, line=10 + len(lines), path=".".join(map(str, at)))
    if isinstance(raw, dict):
        for key, value in raw.items():
            _locations(value, (*at, key), lines)
    elif isinstance(raw, list):
        for index, value in enumerate(raw):
            _locations(value, (*at, index), lines)


def make_config(locations: dict[DocPath, Location], rules_dir: Path = Path("rules")) -> Config:
    return Config(
        rules_dir=rules_dir,
        templates_dir=Path("templates"),
        sources={},
        providers={},
        rules=(),
        vars={},
        defaults=Defaults(),
        locations=locations,
    )


def compile_with_problems(
    raw: dict[str, Any], rules_dir: Path = Path("rules")
) -> tuple[Condition, list[Problem], dict[DocPath, Location]]:
    lines: dict[DocPath, Location] = {}
    _locations(raw, WHEN, lines)
    problems: list[Problem] = []
    condition = compile_condition(
        raw, at=WHEN, config=make_config(lines, rules_dir), problems=problems
    )
    return condition, problems, lines


def compiled(raw: dict[str, Any], rules_dir: Path = Path("rules")) -> Condition:
    condition, problems, _ = compile_with_problems(raw, rules_dir)
    assert problems == []
    return condition


def holds(raw: dict[str, Any], body: Any) -> bool:
    return compiled(raw).check({"body": body}) is None


# -- operators ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        ("order.created", "order.created", True),
        ("order.created", "order.paid", False),
        (5, 5.0, True),  # 1 == 1.0
        (True, 1, False),  # bools are not numbers
        (1, True, False),
        (0, False, False),
        (None, None, True),
        ("5", 5, False),
        ([1, "a"], [1.0, "a"], True),  # a list equals a list
        ([1, "a"], ["a", 1], False),
        ([True], [1], False),
        ({"eq": {"a": [1]}}, {"a": [1.0]}, True),
        ({"eq": {"a": 1}}, {"a": 1, "b": 2}, False),
        ({"eq": {"a": True}}, {"a": 1}, False),
        ({"ne": "x"}, "y", True),
        ({"ne": "x"}, "x", False),
        ({"ne": 1}, True, True),
        ({"in": ["a", "b"]}, "b", True),
        ({"in": ["a", "b"]}, "c", False),
        ({"in": [1, 2]}, 2.0, True),
        ({"in": [1, 2]}, True, False),
        ({"in": [[1], {"a": 1}]}, {"a": 1.0}, True),
        ({"in": [None]}, None, True),
        ({"not_in": ["a"]}, "b", True),
        ({"not_in": ["a"]}, "a", False),
        ({"not_in": [False]}, 0, True),
        ({"gt": 10}, 11, True),
        ({"gt": 10}, 10, False),
        ({"gte": 10}, 10.0, True),
        ({"gte": 10}, 9.99, False),
        ({"lt": 10}, 9, True),
        ({"lt": 10}, 10, False),
        ({"lte": 10}, 10, True),
        ({"lte": 10}, 11, False),
        ({"gt": 10}, "11.5", True),  # form bodies carry numbers as strings
        ({"gt": 10}, "9", False),
        ({"gt": 10}, "1e999", False),  # not finite
        ({"gt": 10}, "eleven", False),
        ({"gt": 12345678901234567890}, "12345678901234567891", True),  # big ints stay exact
        ({"gt": 0}, True, False),  # bools are not numbers
        ({"gt": 10}, None, False),
        ({"gt": 10}, [11], False),
        ({"gt": "2024-01-01T00:00:00Z"}, "2024-01-01T00:00:01Z", True),
        ({"gt": "2024-01-01T00:00:00Z"}, "2023-12-31T23:59:59Z", False),
        ({"lt": "2024-01-01T00:00:00Z"}, "2024-01-01T00:30:00+01:00", True),  # offsets count
        ({"gte": "2024-01-01T00:00:00"}, "2024-01-01T00:00:00Z", True),  # naive means UTC
        ({"lt": "2024-01-01T00:00:00Z"}, "yesterday", False),
        ({"lt": "2024-01-01T00:00:00Z"}, 5, False),
        ({"gt": 5}, "2024-01-01T00:00:00Z", False),
        ({"regex": "^ord.*created$"}, "order.created", True),
        ({"regex": "paid"}, "order.created", False),
        ({"regex": "cre"}, "order.created", True),  # search, not match
        ({"regex": "^56"}, 56912345678, True),  # numbers as text
        ({"regex": "True"}, True, False),
        ({"contains": "dispute"}, "charge.dispute.created", True),
        ({"contains": "refund"}, "charge.dispute.created", False),
        ({"contains": "vip"}, ["new", "vip"], True),
        ({"contains": 1}, [True, 2], False),
        ({"contains": 1}, [1.0], True),
        ({"contains": "a"}, {"a": 1}, False),
        ({"contains": 1}, "123", False),
        ({"startswith": "+56"}, "+56912345678", True),
        ({"startswith": "+56"}, "+1555", False),
        ({"startswith": "569"}, 56912345678, True),
        ({"endswith": ".created"}, "order.created", True),
        ({"endswith": ".created"}, "order.paid", False),
        ({"endswith": "x"}, ["x"], False),
        ({"exists": True}, None, True),  # null exists
        ({"exists": False}, None, False),
        ({"gte": 5, "lt": 10}, 7, True),  # every operator must hold
        ({"gte": 5, "lt": 10}, 12, False),
        ({"schema": {"type": "object", "required": ["id"]}}, {"id": 1}, True),
        ({"schema": {"type": "object", "required": ["id"]}}, {"name": "x"}, False),
        ({"schema": {"type": "string", "format": "email"}}, "not-an-email", False),
    ],
)
def test_operator(spec: Any, value: Any, expected: bool) -> None:
    assert holds({"body.x": spec}, {"x": value}) is expected


def test_yaml_dates_compare_as_moments() -> None:
    when = {"body.at": {"gte": datetime(2024, 1, 1, 12, 0), "lt": date(2024, 1, 2)}}
    assert holds(when, {"at": "2024-01-01T13:00:00Z"})
    assert not holds(when, {"at": "2024-01-01T11:59:59Z"})
    assert not holds(when, {"at": "2024-01-02T00:00:00+00:00"})
    aware = {"body.at": {"gt": datetime(2024, 1, 1, tzinfo=UTC)}}
    assert holds(aware, {"at": datetime(2024, 1, 2)})


def test_schema_from_a_file_relative_to_the_rules_dir(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "order.json").write_text(
        json.dumps({"type": "object", "properties": {"total": {"type": "number"}}})
    )
    condition = compiled({"body.order": {"schema": "schemas/order.json"}}, rules_dir=tmp_path)
    assert condition.check({"body": {"order": {"total": 5}}}) is None
    failure = condition.check({"body": {"order": {"total": "5"}}})
    assert failure is not None
    assert failure.op == "schema"
    assert failure.expected == "schemas/order.json"


# -- absent ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("x", False),
        (None, False),  # absent is not null
        ({"eq": None}, False),
        ({"ne": None}, True),
        ({"ne": "x"}, True),
        ({"in": [None, "x"]}, False),
        ({"not_in": [None, "x"]}, True),
        ({"gt": 0}, False),
        ({"gte": 0}, False),
        ({"lt": 0}, False),
        ({"lte": 0}, False),
        ({"regex": ".*"}, False),
        ({"contains": ""}, False),
        ({"startswith": ""}, False),
        ({"endswith": ""}, False),
        ({"exists": True}, False),
        ({"exists": False}, True),
        ({"schema": {}}, False),  # the empty schema accepts every value, but not absence
    ],
)
def test_absent(spec: Any, expected: bool) -> None:
    assert holds({"body.missing": spec}, {"other": 1}) is expected


def test_failure_on_absent_is_marked_absent_and_json_friendly() -> None:
    failure = compiled({"body.missing": {"exists": True}}).check({"body": {}})
    assert failure == Failure(
        path="body.missing", op="exists", expected=True, actual=None, absent=True
    )
    assert failure.to_json() == {
        "path": "body.missing",
        "op": "exists",
        "expected": True,
        "actual": None,
        "absent": True,
    }


def test_json_equal_rejects_absent_even_against_itself() -> None:
    assert not json_equal(ABSENT, ABSENT)
    assert not json_equal(ABSENT, None)


# -- combinators ----------------------------------------------------------------------------


def test_entries_of_a_mapping_are_anded() -> None:
    when = {"body.type": "a", "body.n": 1}
    assert holds(when, {"type": "a", "n": 1})
    assert not holds(when, {"type": "a", "n": 2})
    assert not holds(when, {"type": "b", "n": 1})


def test_empty_condition_always_holds() -> None:
    assert compiled({}).check({}) is None


def test_all_any_not() -> None:
    assert holds({"all": [{"body.a": 1}, {"body.b": 2}]}, {"a": 1, "b": 2})
    assert not holds({"all": [{"body.a": 1}, {"body.b": 2}]}, {"a": 1, "b": 3})
    assert holds({"any": [{"body.a": 1}, {"body.b": 2}]}, {"a": 0, "b": 2})
    assert not holds({"any": [{"body.a": 1}, {"body.b": 2}]}, {"a": 0, "b": 0})
    assert holds({"not": {"body.env": "test"}}, {"env": "live"})
    assert not holds({"not": {"body.env": "test"}}, {"env": "test"})
    # a list under `not` means: not all of them
    assert holds({"not": [{"body.a": 1}, {"body.b": 2}]}, {"a": 1, "b": 3})
    assert not holds({"not": [{"body.a": 1}, {"body.b": 2}]}, {"a": 1, "b": 2})


def test_nested_all_inside_any_inside_not() -> None:
    when = {
        "body.kind": "order",
        "not": {
            "any": [{"all": [{"body.env": "test"}, {"body.user": "bot"}]}, {"body.void": True}]
        },
    }
    assert holds(when, {"kind": "order", "env": "test", "user": "ana"})
    assert holds(when, {"kind": "order", "env": "live", "user": "bot"})
    assert not holds(when, {"kind": "order", "env": "test", "user": "bot"})
    assert not holds(when, {"kind": "order", "void": True})
    assert not holds(when, {"kind": "refund"})


# -- failures -------------------------------------------------------------------------------


def test_the_first_failing_entry_in_written_order_is_reported() -> None:
    condition = compiled({"body.type": "order.paid", "body.total": {"gte": 100, "lt": 1000}})
    failure = condition.check({"body": {"type": "order.paid", "total": 5000}})
    assert failure == Failure(path="body.total", op="lt", expected=1000, actual=5000)
    failure = condition.check({"body": {"type": "order.created", "total": 5}})
    assert failure == Failure(
        path="body.type", op="eq", expected="order.paid", actual="order.created"
    )


def test_path_is_reported_as_written() -> None:
    failure = compiled({'body["First Name"]': {"startswith": "A"}}).check(
        {"body": {"First Name": "Bea"}}
    )
    assert failure is not None
    assert failure.path == 'body["First Name"]'
    assert failure.actual == "Bea"


def test_any_failure_lists_every_branch() -> None:
    condition = compiled({"any": [{"body.livemode": True}, {"headers.x-test": {"exists": False}}]})
    failure = condition.check({"body": {"livemode": False}, "headers": {"x-test": "1"}})
    assert failure is not None
    assert (failure.path, failure.op) == ("any", "any")
    assert failure.branches == (
        Failure(path="body.livemode", op="eq", expected=True, actual=False),
        Failure(path="headers.x-test", op="exists", expected=False, actual="1"),
    )
    as_json = failure.to_json()
    assert as_json["branches"][1] == {
        "path": "headers.x-test",
        "op": "exists",
        "expected": False,
        "actual": "1",
        "absent": False,
    }
    json.dumps(as_json)


def test_not_failure_shows_what_held() -> None:
    failure = compiled({"not": {"body.env": "test", "body.gone": {"exists": False}}}).check(
        {"body": {"env": "test"}}
    )
    assert failure is not None
    assert (failure.path, failure.op) == ("not", "not")
    assert failure.expected == {"body.env": "test", "body.gone": {"exists": False}}
    assert failure.actual == {"body.env": "test"}


def test_failure_to_json_turns_other_types_to_text() -> None:
    seen = datetime(2024, 1, 1, tzinfo=UTC)
    failure = compiled({"event.received_at": {"lt": "2020-01-01T00:00:00Z"}}).check(
        {"event": {"received_at": seen, "raw": object()}}
    )
    assert failure is not None
    assert failure.to_json()["actual"] == "2024-01-01T00:00:00+00:00"
    odd = Failure(path="p", op="eq", expected=float("nan"), actual={1: b"x", "t": (1, object)})
    encoded = json.loads(json.dumps(odd.to_json(), allow_nan=False))
    assert encoded["expected"] == "nan"
    assert encoded["actual"]["1"] == "b'x'"


def test_equalities_expose_the_required_top_level_values() -> None:
    condition = compiled(
        {
            "body.type": "order.created",
            "body.n": {"eq": 5, "gt": 1},
            "body.tags": ["a"],
            "body.total": {"gt": 5},
            "all": [{"headers.x-kind": "x"}],
            "any": [{"body.a": 1}],
            "not": {"body.b": 2},
        }
    )
    assert condition.equalities() == {
        ("body", "type"): "order.created",
        ("body", "n"): 5,
        ("body", "tags"): ["a"],
        ("headers", "x-kind"): "x",
    }


# -- problems -------------------------------------------------------------------------------


def _one(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def test_problems_carry_file_line_and_path_of_the_key() -> None:
    raw = {"body.type": "x", "body.amount": {"gte": 1, "between": [1, 2]}}
    locations = {
        WHEN: Location(file=FILE, line=4, path="rules[2].when"),
        (*WHEN, "body.type"): Location(file=FILE, line=5, path="rules[2].when.body.type"),
        (*WHEN, "body.amount"): Location(file=FILE, line=6, path="rules[2].when.body.amount"),
        (*WHEN, "body.amount", "between"): Location(
            file=FILE, line=7, path="rules[2].when.body.amount.between"
        ),
    }
    problems: list[Problem] = []
    compile_condition(raw, at=WHEN, config=make_config(locations), problems=problems)
    problem = _one(problems)
    assert (problem.file, problem.line, problem.path) == (
        FILE,
        7,
        "rules[2].when.body.amount.between",
    )
    assert "unknown operator 'between'" in problem.message
    assert "eq, ne, in, not_in, gt, gte, lt, lte, regex" in problem.message
    assert str(problem).startswith("rules/shop.yaml:7: rules[2].when.body.amount.between: ")


@pytest.mark.parametrize(
    ("raw", "where", "message"),
    [
        ({"body.x": {"regex": "(unclosed"}}, ("body.x", "regex"), "'(unclosed' does not compile"),
        ({"body.x": {"schema": {"type": 5}}}, ("body.x", "schema"), "valid JSON Schema"),
        ({"body.x": {"schema": 5}}, ("body.x", "schema"), "JSON Schema mapping"),
        ({"body..x": 1}, ("body..x",), "empty segment"),
        ({"payload.x": 1}, ("payload.x",), "body, headers, query"),
        ({"body.customer": {"id": 5}}, ("body.customer",), "('id'; operators are eq, ne"),
        ({"body.customer": {"id": 5}}, ("body.customer",), "use `eq: {...}`"),
        ({"body.customer": {}}, ("body.customer",), "no operator in this mapping (nothing"),
        ({"body.x": {"in": "a"}}, ("body.x", "in"), "expects a list"),
        ({"body.x": {"not_in": 5}}, ("body.x", "not_in"), "expects a list"),
        ({"body.x": {"gt": "soon"}}, ("body.x", "gt"), "number or an ISO-8601"),
        ({"body.x": {"lte": True}}, ("body.x", "lte"), "number or an ISO-8601"),
        ({"body.x": {"exists": "yes"}}, ("body.x", "exists"), "true or false"),
        ({"body.x": {"startswith": 56}}, ("body.x", "startswith"), "quote it"),
        ({"body.x": {"regex": 5}}, ("body.x", "regex"), "pattern string"),
        ({"body.x": date(2024, 1, 1)}, ("body.x",), "as a date; quote it"),
        ({"body.x": {"eq": {1: "a"}}}, ("body.x", "eq"), "is not a string"),
        ({"headers.X-Event": "push"}, ("headers.X-Event",), "headers.x-event"),
        ({5: "x"}, (5,), "a condition key is a path or all/any/not, not 5"),
        ({"any": {"body.a": 1}}, ("any",), "non-empty list"),
        ({"all": []}, ("all",), "non-empty list"),
        ({"not": "x"}, ("not",), "non-empty condition mapping"),
        ({"any": [{"body.a": 1}, "body.b"]}, ("any", 1), "a condition is a mapping"),
        ({"not": {"body.a": {"lt": 9, "gtt": 1}}}, ("not", "body.a", "gtt"), "unknown operator"),
    ],
)
def test_problem(raw: dict[str, Any], where: tuple[str | int, ...], message: str) -> None:
    _, problems, lines = compile_with_problems(raw)
    problem = _one(problems)
    assert message in problem.message
    loc = lines[(*WHEN, *where)]
    assert (problem.file, problem.line, problem.path) == (loc.file, loc.line, loc.path)


def test_schema_file_problems(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{nope")
    raw = {"body.a": {"schema": "missing.json"}, "body.b": {"schema": "broken.json"}}
    _, problems, lines = compile_with_problems(raw, rules_dir=tmp_path)
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (lines[(*WHEN, "body.a", "schema")].line, "`schema` expects a readable file"),
        (lines[(*WHEN, "body.b", "schema")].line, "`schema` expects a JSON file"),
    ]


def test_every_problem_is_collected_not_just_the_first() -> None:
    raw = {
        "body.a": {"regex": "("},
        "nope.b": {"gt": "x"},  # a bad path and a bad operand on the same key
        "any": [
            {"body.c": {"exists": True, "wat": 1}},
            {"not": {"body.d": {"schema": {"type": "nope"}}}},
        ],
    }
    _, problems, lines = compile_with_problems(raw)
    assert [p.line for p in problems] == [
        lines[(*WHEN, "body.a", "regex")].line,
        lines[(*WHEN, "nope.b")].line,
        lines[(*WHEN, "nope.b", "gt")].line,
        lines[(*WHEN, "any", 0, "body.c", "wat")].line,
        lines[(*WHEN, "any", 1, "not", "body.d", "schema")].line,
    ]
    assert len(set(p.line for p in problems)) == 5
