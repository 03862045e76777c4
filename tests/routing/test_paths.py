from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.routing.paths import ABSENT, ROOTS, PathError, format_path, lookup, parse_path


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("body.a.b", ("body", "a", "b")),
        ("body.items.0.sku", ("body", "items", 0, "sku")),
        ('body["First Name"]', ("body", "First Name")),
        ("body['x'].y", ("body", "x", "y")),
        ("headers.x-github-event", ("headers", "x-github-event")),
        ("query.token", ("query", "token")),
        ("source", ("source",)),
        ("event.id", ("event", "id")),
        ("vars.team", ("vars", "team")),
        ("body.items[2]", ("body", "items", 2)),
        ('body["0"]', ("body", "0")),  # a quoted key is never an index
        ("body.007", ("body", "007")),  # nor is a number with a leading zero
        ('body["a\\"b"]', ("body", 'a"b')),
        ("body['it\\'s']", ("body", "it's")),
        ('body["a.b"]["c]d"]', ("body", "a.b", "c]d")),
        ("body.número", ("body", "número")),
    ],
)
def test_parse_path(text: str, parts: tuple[str | int, ...]) -> None:
    assert parse_path(text) == parts


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("body..a", "empty segment"),
        ("body.a.", "empty segment"),
        ("body.", "empty segment"),
        ("body.[0]", "empty segment"),
        ('body["a"', "unclosed bracket"),
        ("body[0", "unclosed bracket"),
        ("body[", "unclosed bracket"),
        ('body["a', "unclosed quote"),
        ("body['a\"]", "unclosed quote"),
        ('body["a"x]', "expected ']'"),
        ('body["a"]x', "unexpected 'x'"),
        ("body[]", "empty brackets"),
        ("body[a]", "neither an index nor quoted"),
        ("body[01]", "neither an index nor quoted"),
        ("body.a b", "unexpected ' '"),
        ("body.a]", "unexpected ']'"),
        ("", "starts with a root name"),
        (".body", "starts with a root name"),
    ],
)
def test_malformed_paths_name_the_problem(text: str, why: str) -> None:
    with pytest.raises(ValueError, match="invalid path") as caught:
        parse_path(text)
    assert why in str(caught.value)
    assert isinstance(caught.value, PathError)


def test_unknown_root_names_the_allowed_roots() -> None:
    with pytest.raises(PathError) as caught:
        parse_path("payload.type")
    message = str(caught.value)
    assert "'payload'" in message
    assert "body, headers, query, source, event, vars" in message


def test_format_path_quotes_what_needs_it() -> None:
    assert format_path(("body", "items", 0, "sku")) == "body.items.0.sku"
    assert format_path(("body", "First Name")) == 'body["First Name"]'
    assert format_path(("body", "0")) == 'body["0"]'
    assert format_path(("body", 'a"b\\c')) == 'body["a\\"b\\\\c"]'
    assert format_path(("headers", "x-github-event")) == "headers.x-github-event"
    with pytest.raises(PathError):
        format_path(("payload", "x"))
    with pytest.raises(PathError):
        format_path(("body", -1))


def test_absent_is_a_distinct_sentinel() -> None:
    assert repr(ABSENT) == "<absent>"
    assert ABSENT is not None
    assert ABSENT != None  # noqa: E711


CONTEXT: dict[str, Any] = {
    "body": {
        "type": "order.created",
        "items": [{"sku": "A1"}, {"sku": "B2"}],
        "First Name": "Ana",
        "0": "zero-key",
        "nothing": None,
    },
    "headers": {"x-github-event": "push"},
    "source": "shop",
}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("body.type", "order.created"),
        ("body.items.1.sku", "B2"),
        ("body.items[0].sku", "A1"),
        ('body["First Name"]', "Ana"),
        ("body.0", "zero-key"),  # an index against a mapping tries the key "0"
        ("body.nothing", None),  # null is present, not absent
        ("headers.x-github-event", "push"),
        ("source", "shop"),
    ],
)
def test_lookup_finds_values(text: str, value: Any) -> None:
    assert lookup(CONTEXT, parse_path(text)) == value


@pytest.mark.parametrize(
    "text",
    [
        "body.missing",
        "body.items.2.sku",  # out of range
        "body.items.sku",  # a key against a list
        "body.type.x",  # a key against a string
        "body.type.0",  # strings are not indexed
        "body.nothing.x",  # through null
        "query.token",  # a root the context lacks
        "source.x",
    ],
)
def test_lookup_gives_absent_for_missing_or_mismatched(text: str) -> None:
    assert lookup(CONTEXT, parse_path(text)) is ABSENT


def test_lookup_str_digits_index_a_list() -> None:
    assert lookup(CONTEXT, ("body", "items", "1", "sku")) == "B2"


def test_lookup_in_another_mapping_type_never_raises() -> None:
    class Strict(dict[str, Any]):
        pass

    from types import MappingProxyType

    headers = MappingProxyType({"x-a": "1", "5": "five"})
    context = {"headers": headers, "body": Strict(a=1)}
    assert lookup(context, ("headers", "x-a")) == "1"
    assert lookup(context, ("headers", 5)) == "five"
    assert lookup(context, ("headers", "nope")) is ABSENT
    assert lookup(context, ("body", "a")) == 1


segments = st.one_of(st.text(max_size=12), st.integers(min_value=0, max_value=10**17))
paths = st.tuples(st.sampled_from(ROOTS), st.lists(segments, max_size=6)).map(
    lambda t: (t[0], *t[1])
)


@given(paths)
def test_format_then_parse_round_trips(parts: tuple[str | int, ...]) -> None:
    assert parse_path(format_path(parts)) == parts


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=20,
)
any_segments = st.one_of(st.text(max_size=6), st.integers(), st.sampled_from(["0", "1", "01"]))


@given(
    st.dictionaries(st.sampled_from(ROOTS), json_like),
    st.lists(any_segments, max_size=6),
)
def test_lookup_never_raises(context: dict[str, Any], parts: list[str | int]) -> None:
    for root in ROOTS:
        lookup(context, (root, *parts))  # no exception, whatever the data


@given(json_like)
def test_lookup_walks_to_every_leaf(value: Any) -> None:
    """Every position in a document is reachable by a path made of its keys and indexes."""

    def walk(node: Any, parts: tuple[str | int, ...]) -> None:
        assert lookup({"body": value}, parts) == node or node != node  # NaN
        if isinstance(node, dict):
            for key, item in node.items():
                walk(item, (*parts, key))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, (*parts, index))

    walk(value, ("body",))
