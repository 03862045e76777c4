from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from bridge.config.yamlfile import MAX_NODES, parse_yaml, read_yaml


def lines_of(text: str) -> dict[tuple[str | int, ...], int]:
    document, problems = parse_yaml(text, file="f.yaml")
    assert not problems and document is not None
    return document.lines


def problems_of(text: str) -> list[str]:
    document, problems = parse_yaml(text, file="f.yaml")
    assert document is None
    return [str(p) for p in problems]


def test_values_and_the_line_of_each_key() -> None:
    text = "rules:\n  - name: a\n    ticket:\n      tags: [x,\n        y]\n  - {name: b}\n"
    document, problems = parse_yaml(text, file="f.yaml")
    assert not problems and document is not None
    assert document.data == {
        "rules": [{"name": "a", "ticket": {"tags": ["x", "y"]}}, {"name": "b"}]
    }
    assert document.lines == {
        (): 1,
        ("rules",): 1,
        ("rules", 0): 2,
        ("rules", 0, "name"): 2,
        ("rules", 0, "ticket"): 3,
        ("rules", 0, "ticket", "tags"): 4,
        ("rules", 0, "ticket", "tags", 0): 4,
        ("rules", 0, "ticket", "tags", 1): 5,
        ("rules", 1): 6,
        ("rules", 1, "name"): 6,
    }


def test_empty_text_is_none() -> None:
    document, problems = parse_yaml("# nothing\n", file="f.yaml")
    assert document is not None and document.data is None and not problems


def test_scalars_keep_json_types_and_timestamps_stay_text() -> None:
    document, _ = parse_yaml("a: 1\nb: 1.5\nc: true\nd: null\ne: 2024-01-31\nf: '7'\n", file="f")
    assert document is not None
    assert document.data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "2024-01-31", "f": "7"}


def test_keys_are_kept_as_written() -> None:
    document, _ = parse_yaml("on: 1\n200: ok\n", file="f")
    assert document is not None and document.data == {"on": 1, "200": "ok"}


def test_duplicate_key_names_both_lines() -> None:
    assert problems_of("a:\n  b: 1\n  c: 2\n  b: 3\n") == [
        "f.yaml:4: a.b: key 'b' is defined twice: f.yaml:2 and f.yaml:4"
    ]


def test_every_duplicate_in_a_file_is_reported() -> None:
    assert len(problems_of("a: 1\na: 2\nb: {x: 1, x: 2}\n")) == 2


def test_syntax_error_with_line() -> None:
    assert problems_of("rules:\n  - name: a\n    action: x: y\n") == [
        "f.yaml:3: mapping values are not allowed here"
    ]


def test_two_documents_in_one_file() -> None:
    assert problems_of("a: 1\n---\nb: 2\n") == [
        "f.yaml:2: expected a single document in the stream, but found another document"
    ]


def test_anchors_aliases_and_merge_keys() -> None:
    text = "base: &b {action: add_note, provider: p}\nrule:\n  <<: *b\n  provider: q\nsame: *b\n"
    document, problems = parse_yaml(text, file="f")
    assert not problems and document is not None
    assert document.data["rule"] == {"provider": "q", "action": "add_note"}
    assert document.data["same"] == {"action": "add_note", "provider": "p"}
    assert document.lines[("rule", "provider")] == 4
    assert document.lines[("rule", "action")] == 1  # where the merged key is written


def test_recursive_alias_is_a_problem_not_a_crash() -> None:
    assert problems_of("x: &a\n  - *a\n") == [
        "f.yaml:2: x[0]: an alias refers back to a node that contains it"
    ]


def test_alias_bomb_is_stopped() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    assert problems_of("\n".join(levels)) == [
        f"f.yaml:6: more than {MAX_NODES} values once aliases are expanded"
    ]


def test_unsupported_tags() -> None:
    assert problems_of("a: !!binary aGVsbG8=\nb: !env X\n") == [
        "f.yaml:1: a: unsupported YAML tag !!binary",
        "f.yaml:2: b: unsupported YAML tag !env",
    ]


def test_complex_key() -> None:
    assert problems_of("? [a, b]\n: 1\n") == [
        "f.yaml:1: a key must be plain text, not a list or a mapping"
    ]


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"a: \xff\n")
    document, problems = read_yaml(tmp_path / "bad.yaml", file="bad.yaml")
    assert document is None
    assert [str(p) for p in problems] == ["bad.yaml: not UTF-8 text: invalid start byte"]


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    assert problems_of("a: " + "[" * 1000 + "]" * 1000 + "\n") == ["f.yaml:1: nested too deeply"]


def test_merge_from_a_list_of_sources_keeps_each_sources_lines() -> None:
    text = "a: &m {x: 1}\nb:\n  <<: [*m, {x: 0, y: 2}]\n  z: 3\n"
    document, problems = parse_yaml(text, file="f")
    assert not problems and document is not None
    assert document.data["b"] == {"z": 3, "x": 1, "y": 2}  # explicit keys, then the first source
    assert document.lines[("b", "x")] == 1
    assert document.lines[("b", "y")] == 3
    assert ("b", "<<") not in document.lines


def test_an_aliased_scalar_can_be_a_key_and_a_value() -> None:
    document, problems = parse_yaml("? &k x\n: 1\nb: {*k : 2}\nc: *k\n", file="f")
    assert not problems and document is not None
    assert document.data == {"x": 1, "b": {"x": 2}, "c": "x"}


def test_an_alias_is_a_copy_not_the_same_object() -> None:
    document, _ = parse_yaml("a: &l [1]\nb: *l\n", file="f")
    assert document is not None
    assert document.data["a"] == document.data["b"] and document.data["a"] is not document.data["b"]


def test_alias_problems_are_worded_as_pyyaml_words_them() -> None:
    assert problems_of("a: *nope\n") == ["f.yaml:1: found undefined alias 'nope'"]
    assert problems_of("a: &x 1\nb: &x 2\n") == [
        "f.yaml:2: second occurrence (found duplicate anchor 'x'; first occurrence at line 1)"
    ]
    assert problems_of("a: &s hi\nb:\n  <<: *s\n") == [
        "f.yaml:3: b: `<<` needs a mapping or a list of mappings"
    ]
    assert problems_of("a: &m\n  <<: *m\n") == [
        "f.yaml:2: a: `<<` refers back to a mapping that contains it"
    ]


def test_a_wrong_key_or_tag_drops_only_its_own_value() -> None:
    assert problems_of("? {k: v}\n: {nested: 1}\nb: !!set {x}\nc: 1\nc: 2\n") == [
        "f.yaml:1: a key must be plain text, not a list or a mapping",
        "f.yaml:3: b: unsupported YAML tag !!set",
        "f.yaml:5: c: key 'c' is defined twice: f.yaml:4 and f.yaml:5",
    ]


def test_a_large_file_without_aliases_is_not_an_alias_bomb() -> None:
    text = "rules:\n" + "".join(f"  - {{name: r{i}, a: 1, b: 2}}\n" for i in range(MAX_NODES // 3))
    document, problems = parse_yaml(text, file="f")
    assert not problems and document is not None
    assert len(document.data["rules"]) == MAX_NODES // 3


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.floats(allow_nan=False)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(value=_VALUES, shared=st.booleans(), flow=st.booleans())
def test_any_dumped_value_reads_back_as_pyyaml_reads_it(
    value: Any, shared: bool, flow: bool
) -> None:
    document_value = {"a": value, "b": value} if shared else {"a": value}  # shared: an alias
    text = yaml.safe_dump(document_value, default_flow_style=flow)
    document, problems = parse_yaml(text, file="f")
    assert not problems and document is not None
    assert document.data == _keys_as_text(yaml.safe_load(text))
    assert set(document.lines) >= {("a",)}


def _keys_as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _keys_as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys_as_text(v) for v in value]
    return value
