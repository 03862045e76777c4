"""A template that reads a top-level name its context never holds is a problem at load
(DESIGN §2.5 lists the context), reported where the name is read."""

# ruff: noqa: E501 - expected messages are kept whole, one per line, to be read as `check` prints them

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.exceptions import Problem
from bridge.records import EventStatus, StoredEvent
from bridge.rendering.actions import (
    EVENT_CONTEXT,
    PROVIDER_CONTEXT,
    RULE_CONTEXT,
    compile_ticket,
    compile_tree,
    event_context,
    rule_context,
)
from bridge.rendering.templates import Templates
from tests.rendering.test_ticket import make_config, make_rule

RULE_NAMES = "body, headers, query, source, event, rule, vars, now"


@pytest.fixture
def templates(tmp_path: Path) -> Templates:
    (tmp_path / "templates").mkdir()
    return Templates(tmp_path / "templates")


def problems_of(tmp_path: Path, templates: Templates, ticket: dict[str, object]) -> list[str]:
    problems: list[Problem] = []
    rule = make_rule(ticket)
    compile_ticket(rule, config=make_config(tmp_path, rule), templates=templates, problems=problems)
    return [str(p).replace(str(tmp_path), "<tmp>") for p in sorted(problems)]


def write(templates: Templates, relpath: str, text: str) -> None:
    path = templates.directory / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# -- which names a template reads ----------------------------------------------------------------

POOL = ("alpha", "beta", "gamma", "body")


@st.composite
def statements(draw: st.DrawFn) -> list[tuple[str, str]]:
    kinds = st.sampled_from(["read", "set", "loop", "tested"])
    return draw(st.lists(st.tuples(kinds, st.sampled_from(POOL)), max_size=12))


def _line(kind: str, name: str) -> str:
    return {
        "read": f"{{{{ {name} }}}}",
        "set": f"{{% set {name} = 1 %}}",
        "loop": f"{{% for {name} in [1, 2] %}}{{{{ {name} }}}}{{% endfor %}}",
        "tested": f"{{% if {name} is defined %}}x{{% endif %}}",
    }[kind]


@given(statements())
def test_a_template_reads_the_names_it_uses_before_it_sets_them(
    program: list[tuple[str, str]],
) -> None:
    """What jinja2.meta calls undeclared, at the line of its first read outside a loop that
    binds it; a name tested with `is defined` is the template's own business."""
    source = "\n".join(_line(kind, name) for kind, name in program)
    expected: dict[str, int] = {}
    defined: set[str] = set()
    tested = {name for kind, name in program if kind == "tested"}
    for line, (kind, name) in enumerate(program, start=1):
        if kind == "set":
            defined.add(name)
        elif kind == "read" and name not in defined and name not in tested:
            expected.setdefault(name, line)
    reads = Templates(Path("/nonexistent")).compile_string(source, name="t").reads
    assert {read.name: read.line for read in reads} == expected
    assert all(read.template is None for read in reads)


def test_jinjas_own_names_are_not_reads() -> None:
    source = (
        "{% for x in range(3) %}{{ loop.index }}{% endfor %}{{ dict(a=1) }}"
        "{% macro m(a) %}{{ a }}{{ caller() }}{{ varargs }}{% endmacro %}"
        "{% call m(1) %}in{% endcall %}{% set ns = namespace(n=1) %}{{ ns.n }}"
        "{% with z = 1 %}{{ z }}{% endwith %}"
    )
    assert Templates(Path("/nonexistent")).compile_string(source, name="t").reads == ()


def test_the_context_names_are_what_the_context_holds() -> None:
    event = StoredEvent(
        id="ev_1",
        source="shop",
        received_at=1700000000.0,
        headers={},
        query={},
        payload="{}",
        content_type="application/json",
        dedupe_key=None,
        status=EventStatus.ACCEPTED,
    )
    base = event_context(event, vars={}, now=dt.datetime.now(dt.UTC))
    assert sorted(base) == sorted(EVENT_CONTEXT)
    assert sorted(rule_context(base, "r")) == sorted(RULE_CONTEXT)
    assert (*RULE_CONTEXT, "ticket") == PROVIDER_CONTEXT


# -- a rule's ticket -------------------------------------------------------------------------------


def test_a_ticket_string_reading_an_unknown_name_is_a_problem_at_its_line(
    tmp_path: Path, templates: Templates
) -> None:
    ticket = {
        "subject": "Order {{ customer_name }}",
        "contact": {"name": "{{ bdy.name }}", "email": "{{ body.email }}"},
        "metadata": {"team": "{{ vars.team }} {{ rule.name }} {{ now }}"},
        "correlate": "{% set k = body.id %}{{ k }}",
    }
    assert problems_of(tmp_path, templates, ticket) == [
        f"rules/stripe.yaml:11: rules[0].ticket.contact.name: unknown variable 'bdy': templates here see only {RULE_NAMES} (did you mean 'body'?)",
        f"rules/stripe.yaml:15: rules[0].ticket.subject: unknown variable 'customer_name': templates here see only {RULE_NAMES} (a payload field is body.customer_name)",
    ]


def test_a_name_read_on_a_later_line_of_a_string_is_reported_at_that_line(
    tmp_path: Path, templates: Templates
) -> None:
    ticket = {"subject": "first\n{{ body.id }}\n{{ total }}"}
    assert problems_of(tmp_path, templates, ticket) == [
        f"rules/stripe.yaml:17: rules[0].ticket.subject: unknown variable 'total': templates here see only {RULE_NAMES} (a payload field is body.total)",
    ]


def test_a_template_file_and_the_files_it_includes_are_checked_where_they_read(
    tmp_path: Path, templates: Templates
) -> None:
    write(
        templates,
        "note.txt.j2",
        "Hello\n{% set who = body.name %}{% include 'part.j2' %}\n{{ customer_name }}\n",
    )
    write(
        templates,
        "part.j2",
        "{{ who }}\n{% for item in body.items %}{% include 'row.j2' %}{% endfor %}\n{{ order_id }}",
    )
    write(templates, "row.j2", "{{ item.sku }} {{ sku }}")
    ticket = {"message": {"text": {"template": "note.txt.j2"}}}
    path = "rules[0].ticket.message.text.template"
    assert problems_of(tmp_path, templates, ticket) == [
        f"<tmp>/templates/note.txt.j2:3: {path}: unknown variable 'customer_name': templates here see only {RULE_NAMES} (a payload field is body.customer_name)",
        f"<tmp>/templates/part.j2:3: {path}: unknown variable 'order_id': templates here see only {RULE_NAMES} (a payload field is body.order_id)",
        f"<tmp>/templates/row.j2:1: {path}: unknown variable 'sku': templates here see only {RULE_NAMES} (a payload field is body.sku)",
    ]


def test_a_name_tested_with_is_defined_is_not_a_problem(
    tmp_path: Path, templates: Templates
) -> None:
    write(templates, "shared.j2", "{{ ticket.subject if ticket is defined else body.subject }}")
    ticket = {"subject": {"template": "shared.j2"}}
    assert problems_of(tmp_path, templates, ticket) == []


def test_the_http_providers_templates_also_see_the_ticket(
    tmp_path: Path, templates: Templates
) -> None:
    rule = make_rule({})
    config = make_config(tmp_path, rule)
    problems: list[Problem] = []
    value = {"title": "{{ ticket.subject }} {{ rule.name }}", "who": "{{ requester }}"}
    compile_tree(
        value,
        at=("providers", "helpdesk", "body"),
        config=config,
        templates=templates,
        problems=problems,
    )
    assert [p.message for p in problems] == [
        f"unknown variable 'requester': templates here see only {RULE_NAMES}, ticket (a payload field is body.requester)"
    ]
    assert problems_of(tmp_path, templates, {"subject": "{{ ticket.subject }}"}) == [
        f"rules/stripe.yaml:15: rules[0].ticket.subject: unknown variable 'ticket': templates here see only {RULE_NAMES} (`ticket` is seen only by the http provider's url, headers and body)"
    ]
