import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.config.model import Config, Defaults
from bridge.exceptions import Problem, RenderError
from bridge.routing.conditions import Condition, Failure, compile_condition
from bridge.routing.matcher import MatchableRule, Matcher, MatchResult, TraceEntry

CONFIG = Config(
    rules_dir=Path("rules"),
    templates_dir=Path("templates"),
    sources={},
    providers={},
    rules=(),
    vars={},
    defaults=Defaults(),
    locations={},
)


def condition(when: Mapping[str, Any]) -> Condition:
    problems: list[Problem] = []
    compiled = compile_condition(when, at=("rules", 0, "when"), config=CONFIG, problems=problems)
    assert problems == []
    return compiled


def rule(
    name: str, when: Mapping[str, Any], sources: tuple[str, ...] = ("shop",), **options: Any
) -> MatchableRule:
    return MatchableRule(name=name, sources=sources, condition=condition(when), **options)


def event(**body: Any) -> dict[str, Any]:
    return {"body": body, "headers": {}, "query": {}, "source": "shop"}


def test_first_match_ends_matching_and_later_rules_are_noted() -> None:
    matcher = Matcher(
        [
            rule("paid", {"body.type": "order.paid"}),
            rule("created", {"body.type": "order.created"}),
            rule("big", {"body.total": {"gte": 100}}),
        ]
    )
    result = matcher.match("shop", event(type="order.created", total=500), full_trace=True)
    assert result.matched == ("created",)
    assert result.default_used is False
    assert result.trace == (
        TraceEntry(
            rule="paid",
            matched=False,
            failed=Failure(
                path="body.type", op="eq", expected="order.paid", actual="order.created"
            ),
        ),
        TraceEntry(rule="created", matched=True, failed=None),
        TraceEntry(rule="big", matched=False, failed=None, note="not tried: created matched first"),
    )


def test_continue_lets_matching_go_on() -> None:
    matcher = Matcher(
        [
            rule("audit", {}, continue_=True),
            rule("created", {"body.type": "order.created"}),
            rule("any-order", {"body.type": {"startswith": "order."}}),
        ]
    )
    assert matcher.match("shop", event(type="order.created")).matched == ("audit", "created")
    assert matcher.match("shop", event(type="order.paid")).matched == ("audit", "any-order")


def test_rules_only_see_their_own_sources() -> None:
    matcher = Matcher(
        [
            rule("stripe-only", {}, sources=("stripe",)),
            rule("both", {}, sources=("stripe", "shop")),
        ]
    )
    assert matcher.match("shop", event()).matched == ("both",)
    assert matcher.match("stripe", event()).matched == ("stripe-only",)
    unknown = matcher.match("github", event())
    assert unknown == MatchResult(matched=(), trace=(), default_used=False)


def test_no_match_is_not_an_error() -> None:
    matcher = Matcher([rule("paid", {"body.type": "order.paid"})])
    result = matcher.match("shop", event(type="x"), full_trace=True)
    assert result.matched == ()
    assert result.default_used is False
    assert result.trace[0].failed is not None
    assert result.trace[0].failed.actual == "x"


def test_default_rule_is_used_when_nothing_matched_without_checking_it() -> None:
    matcher = Matcher(
        [
            rule("paid", {"body.type": "order.paid"}),
            rule("fallback", {"body.never": True}, sources=(), predicate=lambda _: False),
        ],
        default_rules={"shop": "fallback"},
    )
    result = matcher.match("shop", event(type="order.created"), full_trace=True)
    assert result.matched == ("fallback",)
    assert result.default_used is True
    assert result.trace[-1] == TraceEntry(
        rule="fallback", matched=True, failed=None, note="default rule"
    )
    assert [entry.rule for entry in result.trace] == ["paid", "fallback"]
    assert matcher.match("shop", event(type="order.paid")).matched == ("paid",)
    # a rule without sources is never matched directly
    assert Matcher([rule("fallback", {}, sources=())]).match("shop", event()).matched == ()


def test_default_rule_applies_to_a_source_without_rules() -> None:
    matcher = Matcher([rule("fallback", {}, sources=())], default_rules={"github": "fallback"})
    result = matcher.match("github", event())
    assert (result.matched, result.default_used) == (("fallback",), True)


def test_predicate_false_and_render_error_are_traced() -> None:
    def broken(context: Mapping[str, Any]) -> bool:
        raise RenderError(template="rules.yaml:9 rules[0].if", line=1, message="'x' is undefined")

    calls: list[str] = []

    def counted(context: Mapping[str, Any]) -> bool:
        calls.append("called")
        return False

    matcher = Matcher(
        [
            rule("not-checked", {"body.type": "other"}, predicate=counted),
            rule("broken", {}, predicate=broken),
            rule("falsy", {}, predicate=counted),
            rule("truthy", {}, predicate=lambda context: context["body"]["type"] == "t"),
        ]
    )
    result = matcher.match("shop", event(type="t"), full_trace=True)
    assert result.matched == ("truthy",)
    assert calls == ["called"]  # the `if` of a rule whose condition failed is not evaluated
    broken_entry, falsy_entry = result.trace[1], result.trace[2]
    assert broken_entry.matched is False
    assert broken_entry.failed == Failure(
        path="if", op="if", expected=True, actual="'x' is undefined"
    )
    assert broken_entry.note == "the if expression failed to render"
    assert falsy_entry.failed == Failure(path="if", op="if", expected=True, actual=False)


def test_duplicate_names_and_unknown_defaults_are_refused() -> None:
    with pytest.raises(ValueError, match="two rules are named 'a'"):
        Matcher([rule("a", {}), rule("a", {})])
    with pytest.raises(ValueError, match="default rule 'nope' of source 'shop'"):
        Matcher([rule("a", {})], default_rules={"shop": "nope"})


def test_to_json_shapes() -> None:
    matcher = Matcher(
        [
            rule("paid", {"body.type": "order.paid", "body.total": {"gt": 10}}),
            rule("created", {"body.type": "order.created"}),
            rule("later", {}),
        ]
    )
    result = matcher.match("shop", event(type="order.created"), full_trace=True)
    as_json = result.to_json()
    assert as_json == {
        "matched": ["created"],
        "trace": [
            {
                "rule": "paid",
                "matched": False,
                "failed": {
                    "path": "body.type",
                    "op": "eq",
                    "expected": "order.paid",
                    "actual": "order.created",
                    "absent": False,
                },
            },
            {"rule": "created", "matched": True, "failed": None},
            {
                "rule": "later",
                "matched": False,
                "failed": None,
                "note": "not tried: created matched first",
            },
        ],
        "default_used": False,
        "skipped_by_index": 0,
    }
    json.dumps(as_json)


# -- the index ------------------------------------------------------------------------------


class CountingContext(Mapping[str, Any]):
    """An event context that counts how often a condition (or the index) reads it."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.reads = 0

    def __getitem__(self, key: str) -> Any:
        self.reads += 1
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


def test_the_index_checks_a_handful_of_10000_rules() -> None:
    rules = [rule(f"type-{i}", {"body.type": f"t{i}", "body.ok": True}) for i in range(10_000)]
    rules.insert(5_000, rule("no-equality", {"body.total": {"gt": 1_000_000}}))
    rules.append(rule("catch-all", {"body.ok": True}))
    matcher = Matcher(rules)

    context = CountingContext(event(type="t7777", ok=True))
    result = matcher.match("shop", context)
    assert result.matched == ("type-7777",)
    assert context.reads <= 6  # index lookup + three candidates' conditions
    assert result.skipped_by_index == 10_002 - 3
    assert [entry.rule for entry in result.trace] == ["no-equality", "type-7777", "catch-all"]
    assert result.trace[-1].note == "not tried: type-7777 matched first"

    unknown = CountingContext(event(type="nope", ok=True))
    assert matcher.match("shop", unknown).matched == ("catch-all",)
    assert unknown.reads <= 4

    everything = CountingContext(event(type="t7777", ok=True))
    full = matcher.match("shop", everything, full_trace=True)
    assert full.matched == result.matched
    assert everything.reads > 7_000  # the counter does see every checked rule
    assert len(full.trace) == 10_002
    assert full.skipped_by_index == 0


def test_the_index_respects_json_equality() -> None:
    matcher = Matcher(
        [
            rule("true", {"body.v": True}, continue_=True),
            rule("one", {"body.v": 1}, continue_=True),
            rule("one-float", {"body.v": 1.0}, continue_=True),
            rule("text-one", {"body.v": "1"}, continue_=True),
            rule("list", {"body.v": [1]}, continue_=True),
            rule("null", {"body.v": None}, continue_=True),
            rule("eq-op", {"body.v": {"eq": 1}}, continue_=True),
        ]
    )

    def matched(value: Any) -> tuple[str, ...]:
        return matcher.match("shop", event(v=value)).matched

    assert matched(True) == ("true",)
    assert matched(1) == ("one", "one-float", "eq-op")
    assert matched(1.0) == ("one", "one-float", "eq-op")
    assert matched("1") == ("text-one",)
    assert matched([1.0]) == ("list",)
    assert matched(None) == ("null",)
    assert matcher.match("shop", event()).matched == ()


def test_the_index_uses_the_most_discriminating_equality_path() -> None:
    rules = [rule("kind", {"body.kind": "a"})]
    rules += [rule(f"type-{i}", {"body.type": f"t{i}", "body.kind": "a"}) for i in range(5)]
    result = Matcher(rules).match("shop", event(kind="a", type="t3"), full_trace=False)
    # body.kind is shared by more rules, but all want the same value: body.type is the index
    assert result.matched == ("kind",)
    assert result.skipped_by_index == 4
    assert [entry.rule for entry in result.trace] == ["kind", "type-3"]


# -- the index never changes what matches ---------------------------------------------------

VALUES = [True, False, 1, 1.0, 0, "1", "a", None, [1], [True], {"k": 1}]
values = st.sampled_from(VALUES)


def equal(path: str, value: Any) -> dict[str, Any]:
    return {path: {"eq": value} if isinstance(value, dict) else value}


entries = st.one_of(
    values.map(lambda v: equal("body.type", v)),
    values.map(lambda v: {"body.type": {"eq": v}}),
    st.lists(values, max_size=3).map(lambda vs: {"body.type": {"in": vs}}),
    values.map(lambda v: {"body.type": {"ne": v}}),
    values.map(lambda v: equal("body.kind", v)),
    values.map(lambda v: {"all": [equal("body.type", v)]}),
    values.map(lambda v: {"any": [equal("body.type", v), equal("body.kind", v)]}),
    st.integers(-1, 2).map(lambda n: {"body.n": {"gt": n}}),
    st.just({"body.type": {"exists": False}}),
)
whens = st.lists(entries, max_size=3).map(lambda parts: {k: v for p in parts for k, v in p.items()})
rule_sets = st.lists(
    st.tuples(whens, st.booleans(), st.sampled_from([("a",), ("b",), ("a", "b"), ()])),
    max_size=12,
)
events = st.fixed_dictionaries(
    {},
    optional={"type": values, "kind": values, "n": st.integers(-2, 3)},
)


@settings(max_examples=300)
@given(rule_sets, events, st.booleans())
def test_index_and_full_trace_match_the_same(
    specs: list[tuple[dict[str, Any], bool, tuple[str, ...]]], body: dict[str, Any], default: bool
) -> None:
    rules = [
        MatchableRule(name=f"r{i}", sources=sources, condition=condition(when), continue_=cont)
        for i, (when, cont, sources) in enumerate(specs)
    ]
    defaults = {"a": rules[-1].name} if default and rules else None
    matcher = Matcher(rules, default_rules=defaults)
    context = {"body": body}
    for source in ("a", "b"):
        fast = matcher.match(source, context)
        full = matcher.match(source, context, full_trace=True)
        assert fast.matched == full.matched
        assert fast.default_used == full.default_used
        # what the fast trace says about a rule, the full trace says too
        full_entries = {entry.rule: entry for entry in full.trace if entry.note != "default rule"}
        for entry in fast.trace:
            if entry.note != "default rule":
                assert entry == full_entries[entry.rule]
        # and both agree with the plain reading of the rules
        expected: list[str] = []
        for r in rules:
            if source in r.sources and r.condition.check(context) is None:
                expected.append(r.name)
                if not r.continue_:
                    break
        if not expected and defaults and source in defaults:
            expected = [defaults[source]]
        assert list(fast.matched) == expected
