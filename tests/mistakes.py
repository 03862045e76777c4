"""Nine configuration mistakes of nine kinds, each a one-line change of a clean configuration.

Each mistake rewrites one line and no other, so every problem keeps its line whichever mistakes
are made together: tests can make any of them at once and know exactly what `check` must say.
"""

# ruff: noqa: E501 - expected messages are kept whole, one per line, to be read as `check` prints them

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# loads clean: a log provider, a vambe provider, one source, five rules
CLEAN = """\
providers:
  audit: {type: log}
  desk: {type: vambe, api_key: k-123456, phone_id: p-1, stage_id: s-1}
sources:
  form: {verify: {type: none}}
rules:
  - name: one
    source: form
    action: add_note
    provider: audit
  - name: two
    source: form
    action: add_note
    provider: audit
  - name: three
    source: form
    when: {body.email: {regex: "@example[.]com$"}}
    action: add_note
    provider: audit
  - name: four
    source: form
    when: {body.total: {gte: 5}}
    if: "body.total > 1"
    action: add_note
    provider: audit
    ticket:
      subject: "Order {{ body.id }}"
      message: {text: {template: note.txt.j2}}
  - name: five
    source: form
    action: create_ticket
    provider: desk
    ticket:
      contact: {phone: "{{ body.phone }}"}
"""


@dataclass(frozen=True, kw_only=True)
class Mistake:
    line: int  # 1-based line of CLEAN that the mistake rewrites
    text: str  # the line as the mistake writes it
    problem: str  # what load_service reports, the rules directory shown as <rules>


MISTAKES = {
    "provider option missing": Mistake(
        line=3,
        text="  desk: {type: vambe, phone_id: p-1, stage_id: s-1}",
        problem="<rules>/all.yaml:3: providers.desk: missing required key 'api_key'",
    ),
    "unknown source": Mistake(
        line=8,
        text="    source: from",
        problem="<rules>/all.yaml:8: rules[0].source: source 'from' is not defined (defined: form); did you mean 'form'?",
    ),
    "unknown provider": Mistake(
        line=14,
        text="    provider: adit",
        problem="<rules>/all.yaml:14: rules[1].provider: provider 'adit' is not defined (defined: audit, desk); did you mean 'audit'?",
    ),
    "duplicate rule name": Mistake(
        line=15,
        text="  - name: one",
        problem="<rules>/all.yaml:15: rules[2].name: rule 'one' is defined twice: <rules>/all.yaml:7 and <rules>/all.yaml:15",
    ),
    "bad regex": Mistake(
        line=17,
        text='    when: {body.email: {regex: "(unclosed"}}',
        problem="<rules>/all.yaml:17: rules[2].when.body.email.regex: `regex` '(unclosed' does not compile: missing ), unterminated subpattern at position 0",
    ),
    "unknown operator": Mistake(
        line=22,
        text="    when: {body.total: {greater: 5}}",
        problem="<rules>/all.yaml:22: rules[3].when.body.total: no operator in this mapping ('greater'; operators are eq, ne, in, not_in, gt, gte, lt, lte, regex, contains, startswith, endswith, exists, schema); to compare with a mapping use `eq: {...}`",
    ),
    "bad if expression": Mistake(
        line=23,
        text='    if: "body.total >"',
        problem="<rules>/all.yaml:23: rules[3].if: 'body.total >' is not an expression: unexpected 'end of template'",
    ),
    "template syntax error": Mistake(
        line=27,
        text='      subject: "Order {{ body.id "',
        problem="<rules>/all.yaml:27: rules[3].ticket.subject: unexpected end of template, expected 'end of print statement'.",
    ),
    "missing template file": Mistake(
        line=28,
        text="      message: {text: {template: missing.txt.j2}}",
        problem="<rules>/all.yaml:28: rules[3].ticket.message.text.template: template file 'missing.txt.j2' not found (looked under the templates directory <templates>)",
    ),
}


def write_config(root: Path, mistakes: set[str]) -> None:
    """rules/all.yaml and templates/ under `root`, with the named MISTAKES made."""
    lines = CLEAN.splitlines()
    for name in mistakes:
        mistake = MISTAKES[name]
        lines[mistake.line - 1] = mistake.text
    (root / "rules").mkdir()
    (root / "rules" / "all.yaml").write_text("\n".join(lines) + "\n")
    (root / "templates").mkdir()
    (root / "templates" / "note.txt.j2").write_text("Order {{ body.id }}\n")
