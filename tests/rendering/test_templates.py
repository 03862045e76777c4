import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jinja2 import StrictUndefined, Undefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bridge.config.model import Config, Defaults, DocPath, Location
from bridge.exceptions import Problem, RenderError
from bridge.records import EventStatus, StoredEvent
from bridge.rendering.actions import ConstantTree, compile_tree, event_context, rule_context
from bridge.rendering.templates import TemplateProblem, Templates


def make_config(tmp_path: Path, locations: dict[DocPath, Location]) -> Config:
    return Config(
        rules_dir=tmp_path / "rules",
        templates_dir=tmp_path / "templates",
        sources={},
        providers={},
        rules=(),
        vars={},
        defaults=Defaults(),
        locations=locations,
    )


def write(directory: Path, relpath: str, text: str) -> None:
    path = directory / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def templates(tmp_path: Path) -> Templates:
    (tmp_path / "templates").mkdir()
    return Templates(tmp_path / "templates")


def render(templates: Templates, source: str, context: dict[str, Any]) -> str:
    return templates.compile_string(source, name="inline").render(context)


# -- rendering ------------------------------------------------------------------------------------


def test_string_template_renders_with_filters(templates: Templates) -> None:
    body = {"amount": 4200, "currency": "clp", "phone": "9 6123 4567", "at": 1700000000}
    out = render(
        templates,
        "{{ body.amount | money(body.currency, 'es_CL') }} {{ body.phone | e164('CL') }}"
        " {{ body.at | datetime('%H:%M', 'America/Santiago') }}",
        {"body": body},
    )
    assert out == "$4.200 +56961234567 19:13"


def test_tojson_filter_overrides_jinjas_html_escaping_one(templates: Templates) -> None:
    assert render(templates, "{{ body | tojson }}", {"body": {"a": "<ñ>"}}) == '{"a": "<ñ>"}'


def test_fromjson_filter(templates: Templates) -> None:
    body = {"rawRequest": '{"q3_fullName": {"first": "Ana"}}'}
    src = "{{ (body.rawRequest | fromjson).q3_fullName.first }}"
    assert render(templates, src, {"body": body}) == "Ana"


def test_json_null_renders_as_nothing(templates: Templates) -> None:
    assert render(templates, "[{{ body.email }}]", {"body": {"email": None}}) == "[]"


def test_payload_values_are_never_compiled(templates: Templates) -> None:
    body = {"text": "{{ 7*7 }}", "more": "{% for x in range(3) %}x{% endfor %}"}
    assert render(templates, "{{ body.text }}|{{ body.more }}", {"body": body}) == (
        "{{ 7*7 }}|{% for x in range(3) %}x{% endfor %}"
    )


def test_undefined_is_an_error_naming_template_and_line(templates: Templates) -> None:
    compiled = templates.compile_string("first\nsecond {{ body.missing }}", name="subject")
    with pytest.raises(RenderError) as caught:
        compiled.render({"body": {}})
    assert caught.value.template == "subject"
    assert caught.value.line == 2
    assert "missing" in caught.value.message


def test_file_template_error_gives_the_line_of_the_failing_expression(
    tmp_path: Path, templates: Templates
) -> None:
    write(
        tmp_path / "templates",
        "stripe/dispute.txt.j2",
        "Dispute {{ body.id }}\n\n{% if body.amount %}\n  Amount: {{ body.amount.value.cents }}\n"
        "{% endif %}\n",
    )
    compiled = templates.compile_file("stripe/dispute.txt.j2")
    with pytest.raises(RenderError) as caught:
        compiled.render({"body": {"id": "dp_1", "amount": {"value": {}}}})
    assert (caught.value.template, caught.value.line) == ("stripe/dispute.txt.j2", 4)
    assert "cents" in caught.value.message
    assert "stripe/dispute.txt.j2, line 4" in str(caught.value)


def test_filter_error_becomes_render_error_with_line(templates: Templates) -> None:
    compiled = templates.compile_string("a\nb\n{{ body.phone | e164('CL') }}", name="phone")
    with pytest.raises(RenderError) as caught:
        compiled.render({"body": {"phone": "12"}})
    assert caught.value.line == 3
    assert caught.value.message.startswith("e164: ")
    assert "'12'" in caught.value.message


def test_python_errors_become_render_errors(templates: Templates) -> None:
    compiled = templates.compile_string("{{ body.a + body.b }}", name="sum")
    with pytest.raises(RenderError, match="TypeError") as caught:
        compiled.render({"body": {"a": 1, "b": "x"}})
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_trailing_newline_of_a_file_is_dropped(tmp_path: Path, templates: Templates) -> None:
    write(tmp_path / "templates", "note.j2", "Hello {{ body.name }}\n")
    assert templates.compile_file("note.j2").render({"body": {"name": "Ana"}}) == "Hello Ana"


def test_file_template_can_include_another(tmp_path: Path, templates: Templates) -> None:
    write(tmp_path / "templates", "parts/sig.j2", "-- {{ vars.team }}")
    write(tmp_path / "templates", "mail.j2", 'Hi\n{% include "parts/sig.j2" %}')
    out = templates.compile_file("mail.j2").render({"vars": {"team": "Support"}})
    assert out == "Hi\n-- Support"


# -- the sandbox ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ body.__class__ }}",
        "{{ body.__class__.__mro__ }}",
        "{{ ''.__class__.mro()[1].__subclasses__() }}",
        "{{ body.name.__class__.__base__ }}",
        "{{ body | attr('__class__') }}",
        "{{ '{0.__class__}'.format(body) }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
)
def test_reaching_python_internals_is_a_security_error(templates: Templates, source: str) -> None:
    with pytest.raises(RenderError) as caught:
        render(templates, source, {"body": {"name": "x"}})
    assert caught.value.message.startswith("SecurityError: access to attribute '__")
    assert caught.value.message.endswith("is unsafe.")


_KEYS = st.one_of(
    st.sampled_from(["items", "keys", "get", "copy", "__class__", "__len__", "id", "data"]),
    st.text(st.characters(categories=("L", "N"), include_characters="_"), min_size=1),
)


@given(
    st.dictionaries(_KEYS, st.one_of(st.integers(), st.text(), st.none()), max_size=4),
    _KEYS,
)
def test_a_dict_key_is_read_as_stock_jinjas_sandbox_reads_it(
    body: dict[str, Any], key: str
) -> None:
    """The sandbox's short way to a dict's keys gives what Jinja's own lookup gives: the
    key, a method of dict (not the key) where the name is one, undefined, or refused."""
    stock = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    ours = Templates(Path("."))._env

    def looked_up(env: Any) -> tuple[str, Any]:
        try:
            value = env.getattr(body, key)
        except SecurityError:
            return ("refused", None)
        if isinstance(value, Undefined):
            return ("undefined", None)
        return ("method", getattr(value, "__name__", None)) if callable(value) else ("value", value)

    assert looked_up(ours) == looked_up(stock)


def test_payload_cannot_be_modified(templates: Templates) -> None:
    body: dict[str, Any] = {"items": [1, 2], "tags": ["a"]}
    for source in (
        '{{ body["items"].append(1) }}',
        "{{ body.tags.append(1) }}",
        "{{ body.update({'x': 1}) }}",
        "{{ body.pop('tags') }}",
    ):
        with pytest.raises(RenderError, match="SecurityError"):
            render(templates, source, {"body": body})
    # `.items` is the dict method here; it cannot be used to append either
    with pytest.raises(RenderError):
        render(templates, "{{ body.items.append(1) }}", {"body": body})
    assert body == {"items": [1, 2], "tags": ["a"]}


# -- compiling ------------------------------------------------------------------------------------


def test_syntax_error_in_string_names_the_line(templates: Templates) -> None:
    with pytest.raises(TemplateProblem) as caught:
        templates.compile_string("ok\n{{ body.x | }}", name="s")
    assert caught.value.line == 2
    assert caught.value.template is None


def test_unknown_filter_is_found_at_compile_time(templates: Templates) -> None:
    with pytest.raises(TemplateProblem, match="no_such_filter"):
        templates.compile_string("{{ body.x | no_such_filter }}", name="s")


def test_syntax_error_in_file_names_file_and_line(tmp_path: Path, templates: Templates) -> None:
    write(
        tmp_path / "templates", "bad.j2", "line one\n{% if body.x %}\n{{ body.y ) }}\n{% endif %}"
    )
    with pytest.raises(TemplateProblem) as caught:
        templates.compile_file("bad.j2")
    assert (caught.value.template, caught.value.line) == ("bad.j2", 3)
    assert "')'" in caught.value.message


def test_missing_file_says_where_it_was_looked_for(templates: Templates) -> None:
    with pytest.raises(TemplateProblem) as caught:
        templates.compile_file("stripe/nope.j2")
    assert "'stripe/nope.j2' not found" in caught.value.message
    assert str(templates.directory) in caught.value.message


def test_missing_include_is_found_at_compile_time(tmp_path: Path, templates: Templates) -> None:
    write(tmp_path / "templates", "mail.j2", 'Hi\n\n{% include "parts/missing.j2" %}\n')
    with pytest.raises(TemplateProblem) as caught:
        templates.compile_file("mail.j2")
    assert (caught.value.template, caught.value.line) == ("mail.j2", 3)
    assert "parts/missing.j2" in caught.value.message


def test_include_ignore_missing_is_allowed(tmp_path: Path, templates: Templates) -> None:
    write(tmp_path / "templates", "mail.j2", 'Hi{% include "opt.j2" ignore missing %}')
    assert templates.compile_file("mail.j2").render({}) == "Hi"


@pytest.mark.parametrize("relpath", ["../secret.j2", "a/../../secret.j2", "/etc/passwd", ""])
def test_paths_escaping_the_directory_are_refused(
    tmp_path: Path, templates: Templates, relpath: str
) -> None:
    (tmp_path / "secret.j2").write_text("secret")
    with pytest.raises(TemplateProblem, match="stay inside"):
        templates.compile_file(relpath)


# -- expressions ----------------------------------------------------------------------------------


def test_expression_evaluates_to_a_value(templates: Templates) -> None:
    expr = templates.compile_expression("body.amount > 1000 and 'vip' in body.tags", name="if")
    assert expr.evaluate({"body": {"amount": 4200, "tags": ["vip"]}}) is True
    assert expr.evaluate({"body": {"amount": 10, "tags": ["vip"]}}) is False
    assert templates.compile_expression("body.tags", name="x").evaluate(
        {"body": {"tags": [1]}}
    ) == [1]


def test_expression_errors(templates: Templates) -> None:
    with pytest.raises(RenderError) as caught:
        templates.compile_expression("body.missing", name="rules[0].if").evaluate({"body": {}})
    assert caught.value.template == "rules[0].if"
    assert "missing" in caught.value.message
    with pytest.raises(RenderError, match="SecurityError"):
        templates.compile_expression("body.__class__", name="x").evaluate({"body": {}})
    with pytest.raises(TemplateProblem, match="chunk after expression"):
        templates.compile_expression("body.x }} {{ body.y", name="x")
    with pytest.raises(TemplateProblem):
        templates.compile_expression("body.x ==", name="x")


# -- compile_tree ---------------------------------------------------------------------------------

HTTP = ("providers", "helpdesk")


def http_locations() -> dict[DocPath, Location]:
    def loc(line: int, path: str) -> Location:
        return Location(file="rules/providers.yaml", line=line, path=path)

    return {
        HTTP: loc(10, "providers.helpdesk"),
        HTTP + ("url",): loc(11, "providers.helpdesk.url"),
        HTTP + ("headers",): loc(12, "providers.helpdesk.headers"),
        HTTP + ("headers", "X-Id"): loc(13, "providers.helpdesk.headers.X-Id"),
        HTTP + ("body",): loc(14, "providers.helpdesk.body"),
        HTTP + ("body", "lines"): loc(15, "providers.helpdesk.body.lines"),
        HTTP + ("body", "note"): loc(20, "providers.helpdesk.body.note"),
        HTTP + ("body", "file"): loc(25, "providers.helpdesk.body.file"),
        HTTP + ("body", "file", "template"): loc(25, "providers.helpdesk.body.file.template"),
    }


def test_compile_tree_renders_nested_values(tmp_path: Path, templates: Templates) -> None:
    write(tmp_path / "templates", "desc.j2", "Charge {{ body.id }}\n")
    value = {
        "url": "https://h.example/{{ body.id }}",
        "headers": {"X-Id": "{{ event.id }}", "X-Static": "fixed"},
        "body": {
            "lines": ["{{ body.id }}", 3, 1.5, True, None],
            "file": {"template": "desc.j2"},
        },
    }
    problems: list[Problem] = []
    config = make_config(tmp_path, http_locations())
    tree = compile_tree(value, at=HTTP, config=config, templates=templates, problems=problems)
    assert problems == []
    out = tree.render({"body": {"id": "ch_1"}, "event": {"id": "ev_1"}})
    assert out == {
        "url": "https://h.example/ch_1",
        "headers": {"X-Id": "ev_1", "X-Static": "fixed"},
        "body": {"lines": ["ch_1", 3, 1.5, True, None], "file": "Charge ch_1"},
    }
    assert json.loads(json.dumps(out)) == out


def test_compile_tree_keeps_plain_strings_as_constants(
    tmp_path: Path, templates: Templates
) -> None:
    problems: list[Problem] = []
    config = make_config(tmp_path, {})
    tree = compile_tree(
        "plain text", at=("x",), config=config, templates=templates, problems=problems
    )
    assert isinstance(tree, ConstantTree)
    assert tree.render({}) == "plain text"


def test_string_templates_are_named_after_where_they_were_written(
    tmp_path: Path, templates: Templates
) -> None:
    problems: list[Problem] = []
    config = make_config(tmp_path, http_locations())
    tree = compile_tree(
        "{{ body.nope }}", at=HTTP + ("url",), config=config, templates=templates, problems=problems
    )
    with pytest.raises(RenderError) as caught:
        tree.render({"body": {}})
    assert caught.value.template == "rules/providers.yaml:11 providers.helpdesk.url"


def test_compile_tree_collects_every_problem_with_file_and_line(
    tmp_path: Path, templates: Templates
) -> None:
    write(tmp_path / "templates", "broken.j2", "ok\nok\n{{ body.x ) }}\n")
    value = {
        "url": "https://h.example/{{ body.id",
        "headers": {"X-Id": "{% if %}"},
        "body": {
            "note": "line one\nline two\n{{ body.x | nope }}\n",
            "file": {"template": "broken.j2"},
            "lines": {"template": "missing.j2"},
        },
    }
    problems: list[Problem] = []
    config = make_config(tmp_path, http_locations())
    compile_tree(value, at=HTTP, config=config, templates=templates, problems=problems)
    where = {(p.file, p.line, p.path) for p in problems}
    templates_dir = str(tmp_path / "templates")
    assert where == {
        ("rules/providers.yaml", 11, "providers.helpdesk.url"),
        ("rules/providers.yaml", 13, "providers.helpdesk.headers.X-Id"),
        ("rules/providers.yaml", 22, "providers.helpdesk.body.note"),  # third line of the string
        (f"{templates_dir}/broken.j2", 3, "providers.helpdesk.body.file.template"),
        ("rules/providers.yaml", 15, "providers.helpdesk.body.lines.template"),
    }
    missing = next(p for p in problems if p.path.endswith("lines.template"))
    assert "'missing.j2' not found" in missing.message


def test_compile_tree_rejects_values_that_are_not_config_data(
    tmp_path: Path, templates: Templates
) -> None:
    problems: list[Problem] = []
    config = make_config(tmp_path, http_locations())
    compile_tree({"url": object()}, at=HTTP, config=config, templates=templates, problems=problems)
    assert [(p.line, p.message) for p in problems] == [(11, "unsupported value of type object")]


# -- the context ----------------------------------------------------------------------------------


def stored_event() -> StoredEvent:
    return StoredEvent(
        id="ev_1",
        source="stripe",
        received_at=1700000000.25,
        headers={"content-type": "application/json"},
        query={"token": "t"},
        payload='{"id": "evt_1", "data": {"object": {"amount": 4200}}}',
        content_type="application/json",
        dedupe_key="evt_1",
        status=EventStatus.ACCEPTED,
    )


def test_event_context() -> None:
    now = dt.datetime(2024, 1, 2, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    context = event_context(stored_event(), vars={"team": "support"}, now=now)
    assert context == {
        "body": {"id": "evt_1", "data": {"object": {"amount": 4200}}},
        "headers": {"content-type": "application/json"},
        "query": {"token": "t"},
        "source": "stripe",
        "event": {
            "id": "ev_1",
            "received_at": "2023-11-14T22:13:20.250000Z",
            "dedupe_key": "evt_1",
        },
        "vars": {"team": "support"},
        "now": dt.datetime(2024, 1, 2, 3, 0, tzinfo=dt.UTC),
    }
    assert context["now"].tzinfo is dt.UTC
    with pytest.raises(ValueError, match="aware"):
        event_context(stored_event(), vars={}, now=dt.datetime(2024, 1, 2))


def test_rule_context_adds_the_rule_and_shares_the_body(templates: Templates) -> None:
    base = event_context(stored_event(), vars={}, now=dt.datetime.now(dt.UTC))
    context = rule_context(base, "stripe-disputes")
    assert context["rule"] == {"name": "stripe-disputes"}
    assert "rule" not in base
    assert context["body"] is base["body"]
    out = render(templates, "{{ rule.name }} {{ source }} {{ event.dedupe_key }}", context)
    assert out == "stripe-disputes stripe evt_1"


@given(st.text().filter(lambda text: not any(m in text for m in ("{{", "{%", "{#"))))
def test_text_without_markup_is_what_jinja_renders_without_compiling(text: str) -> None:
    templates = Templates(Path("/nonexistent"))
    assert templates.render_plain(text) == templates.compile_string(text, name="t").render({})


def test_a_template_string_compiled_again_keeps_its_own_name_in_errors() -> None:
    templates = Templates(Path("/nonexistent"))
    first = templates.compile_string("{{ body.missing }}", name="rules/a.yaml:3 ticket.subject")
    second = templates.compile_string("{{ body.missing }}", name="rules/b.yaml:9 ticket.subject")
    assert first.template is second.template  # compiled once, and shared
    with pytest.raises(RenderError) as raised:
        second.render({"body": {}})
    assert raised.value.template == "rules/b.yaml:9 ticket.subject"
    assert raised.value.line == 1
