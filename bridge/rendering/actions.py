"""Ticket actions rendered with templates (DESIGN §2.4, §2.5), and the context they see.

compile_tree turns a configuration value whose strings are templates (templates.py) into a
CompiledTree, reporting each template's `TemplateProblem` as a config `Problem` with file and
line; compile_ticket does so for a rule's `ticket` mapping. event_context and rule_context build
what templates see of an event; EVENT_CONTEXT, RULE_CONTEXT and PROVIDER_CONTEXT name what
each kind of template sees, and a template that reads any other top-level name is a problem
(name_problems), found at load rather than as a render error on the first event.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.config.model import Config, DocPath, Location, RuleConfig
from bridge.config.quoting import close_name
from bridge.exceptions import Problem
from bridge.records import StoredEvent
from bridge.rendering.templates import CompiledTemplate, NameRead, TemplateProblem, Templates
from bridge.tickets import Contact, Direction, Message, TicketAction

# A string without these is plain text: rendered once at compile time and kept as a constant.
_MARKERS = ("{{", "{%", "{#")

# What templates see (DESIGN §2.5), in the order the design lists it: a rule's `if` sees
# EVENT_CONTEXT (event_context), its ticket RULE_CONTEXT (rule_context), and the http
# provider's url, headers and body RULE_CONTEXT and the rendered action, `ticket`
# (bridge.providers.http).
EVENT_CONTEXT = ("body", "headers", "query", "source", "event", "vars", "now")
RULE_CONTEXT = ("body", "headers", "query", "source", "event", "rule", "vars", "now")
PROVIDER_CONTEXT = (*RULE_CONTEXT, "ticket")
_SEEN_ELSEWHERE = {
    "rule": "`rule` is seen by a rule's ticket, not by its `if`, which chooses the rule",
    "ticket": "`ticket` is seen only by the http provider's url, headers and body",
}


def name_problems(
    reads: Iterable[NameRead],
    *,
    context: tuple[str, ...],
    at: Location,
    templates: Templates,
) -> list[Problem]:
    """A problem for each name in `reads` that `context` does not hold, where it is read: in
    a template file at its line, in a string written at `at` at the string's line."""
    problems = []
    for read in reads:
        if read.name in context:
            continue
        close = close_name(read.name, context)
        hint = _SEEN_ELSEWHERE.get(read.name) or (
            f"did you mean '{close}'?" if close else f"a payload field is body.{read.name}"
        )
        message = (
            f"unknown variable '{read.name}': templates here see only {', '.join(context)} ({hint})"
        )
        if read.template is not None:
            file, line = str(templates.directory / read.template), read.line
        else:
            file, line = at.file, at.line + read.line - 1
        problems.append(Problem(file=file, line=line, path=at.path, message=message))
    return problems


# -- configuration values as trees of templates ------------------------------------------------


class CompiledTree(abc.ABC):
    """A configuration value whose strings are templates; `render` gives plain JSON data."""

    @abc.abstractmethod
    def render(self, context: Mapping[str, Any]) -> Any: ...


@dataclass(frozen=True, kw_only=True)
class ConstantTree(CompiledTree):
    value: Any

    def render(self, context: Mapping[str, Any]) -> Any:
        return self.value


@dataclass(frozen=True, kw_only=True)
class TemplateTree(CompiledTree):
    template: CompiledTemplate

    def render(self, context: Mapping[str, Any]) -> str:
        return self.template.render(context)


@dataclass(frozen=True, kw_only=True)
class MappingTree(CompiledTree):
    items: tuple[tuple[str | int, CompiledTree], ...]

    def render(self, context: Mapping[str, Any]) -> dict[str | int, Any]:
        return {key: tree.render(context) for key, tree in self.items}


@dataclass(frozen=True, kw_only=True)
class ListTree(CompiledTree):
    items: tuple[CompiledTree, ...]

    def render(self, context: Mapping[str, Any]) -> list[Any]:
        return [tree.render(context) for tree in self.items]


def compile_tree(
    value: Any,
    *,
    at: DocPath,
    config: Config,
    templates: Templates,
    problems: list[Problem],
    context: tuple[str, ...] = PROVIDER_CONTEXT,
) -> CompiledTree:
    """Compile a configuration value written at `at`: every string is a template, a mapping that
    is exactly {template: path} a template file, rendered with `context` (by default what the
    http provider's templates see). Problems are appended, never raised; the tree is only
    meant to be rendered when none were found."""
    compiler = _Compiler(config=config, templates=templates, problems=problems, context=context)
    return compiler.tree(value, at)


def is_file_reference(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"template"}


def written_direction(message: Any) -> Direction | None:
    """The direction a rule's `ticket.message` says it is sent with, when the configuration
    fixes it (a literal, checked at load); None for no message or a direction it refuses."""
    if message is None:
        return None
    if isinstance(message, Mapping) and not is_file_reference(message):
        value = message.get("direction", Direction.INCOMING.value)
        return Direction(value) if value in {d.value for d in Direction} else None
    return Direction.INCOMING


@dataclass(frozen=True, kw_only=True)
class _Compiler:
    config: Config
    templates: Templates
    problems: list[Problem]
    context: tuple[str, ...]  # the names the templates' context holds

    def tree(self, value: Any, at: DocPath) -> CompiledTree:
        if isinstance(value, str):
            return self._string(value, at)
        if is_file_reference(value):
            return self._file(value["template"], at + ("template",))
        if isinstance(value, Mapping):
            keys = (key if isinstance(key, str | int) else str(key) for key in value)
            return MappingTree(
                items=tuple(
                    (key, self.tree(item, at + (key,)))
                    for key, item in zip(keys, value.values(), strict=True)
                )
            )
        if isinstance(value, list | tuple):
            return ListTree(items=tuple(self.tree(item, at + (i,)) for i, item in enumerate(value)))
        if value is None or isinstance(value, bool | int | float):
            return ConstantTree(value=value)
        self.problem(at, f"unsupported value of type {type(value).__name__}")
        return ConstantTree(value=None)

    def text(self, value: Any, at: DocPath) -> CompiledTree:
        """A field that renders to one string: a template, a scalar or {template: path}."""
        if isinstance(value, Mapping | list | tuple) and not is_file_reference(value):
            self.problem(at, "expected text (a template) or {template: path}")
            return ConstantTree(value=None)
        return self.tree(value, at)

    def fields(self, value: Any, at: DocPath, what: str) -> Mapping[Any, Any]:
        """A mapping's entries; for a known shape (_KEYS) unknown keys are problems."""
        if not isinstance(value, Mapping):
            self.problem(at, f"{what}: expected a mapping")
            return {}
        known = _KEYS.get(what)
        if known is None:
            return value
        for key in value:
            if key not in known:
                self.problem(
                    at + (str(key),), f"unknown key {key!r} in {what} ({', '.join(known)})"
                )
        return {key: item for key, item in value.items() if key in known}

    def problem(self, at: DocPath, message: str) -> None:
        loc = self.config.locate(at)
        self.problems.append(Problem(file=loc.file, line=loc.line, path=loc.path, message=message))

    def _string(self, source: str, at: DocPath) -> CompiledTree:
        if not any(marker in source for marker in _MARKERS):
            return ConstantTree(value=self.templates.render_plain(source))
        loc = self.config.locate(at)
        try:
            name = f"{loc.file}:{loc.line} {loc.path}"
            compiled = self.templates.compile_string(source, name=name)
        except TemplateProblem as problem:
            return self._report(problem, loc)
        return self._checked(compiled, loc)

    def _file(self, relpath: Any, at: DocPath) -> CompiledTree:
        if not isinstance(relpath, str):
            self.problem(at, "expected the path of a file under the templates directory")
            return ConstantTree(value=None)
        loc = self.config.locate(at)
        try:
            compiled = self.templates.compile_file(relpath)
        except TemplateProblem as problem:
            return self._report(problem, loc)
        return self._checked(compiled, loc)

    def _checked(self, compiled: CompiledTemplate, loc: Location) -> CompiledTree:
        found = name_problems(
            compiled.reads, context=self.context, at=loc, templates=self.templates
        )
        self.problems.extend(found)
        return TemplateTree(template=compiled)

    def _report(self, problem: TemplateProblem, loc: Location) -> CompiledTree:
        """A problem inside a template file is reported there; one in a string (or a missing
        file) where the configuration wrote it, lines counted from that string's first line."""
        if problem.template is not None:
            file, line = str(self.templates.directory / problem.template), problem.line or 0
        else:
            file, line = loc.file, loc.line + (problem.line - 1 if problem.line else 0)
        self.problems.append(Problem(file=file, line=line, path=loc.path, message=problem.message))
        return ConstantTree(value=None)


# -- ticket actions ----------------------------------------------------------------------------

_MAPPINGS = ("metadata", "contact_metadata", "options")
_KEYS: Mapping[str, tuple[str, ...]] = {
    "ticket": ("contact", "subject", "message", *_MAPPINGS, "tags", "correlate"),
    "contact": ("name", "email", "phone", "identifier"),
    "message": ("text", "direction"),
}


@dataclass(frozen=True, kw_only=True)
class CompiledTicket:
    """A rule's `ticket` mapping, compiled; `render` gives the action for one event."""

    rule: RuleConfig
    tree: CompiledTree

    def render(self, context: Mapping[str, Any]) -> TicketAction:
        """Blank values mean "not given": None, or left out of mappings and tags."""
        data = self.tree.render(context)
        contact = data.get("contact", {})
        message = data.get("message")
        if not isinstance(message, dict):
            message = {"text": message}
        text = _text(message.get("text"))
        direction = Direction(message.get("direction", Direction.INCOMING))
        mappings = {
            key: {name: value for name, value in data.get(key, {}).items() if _given(value)}
            for key in _MAPPINGS
        }
        tags = (_text(tag) for tag in data.get("tags", ()))
        return TicketAction(
            action=self.rule.action,
            provider=self.rule.provider,
            contact=Contact(**{key: _text(value) for key, value in contact.items()}),
            subject=_text(data.get("subject")),
            message=Message(text=text, direction=direction) if text is not None else None,
            tags=tuple(dict.fromkeys(tag for tag in tags if tag is not None)),
            correlate=_text(data.get("correlate")),
            on_existing=self.rule.on_existing,
            on_missing=self.rule.on_missing,
            **mappings,
        )


def compile_ticket(
    rule: RuleConfig, *, config: Config, templates: Templates, problems: list[Problem]
) -> CompiledTicket:
    """Compile `rule.ticket`, appending every problem found (unknown keys, wrong shapes,
    templates that do not compile) to `problems`."""
    c = _Compiler(config=config, templates=templates, problems=problems, context=RULE_CONTEXT)
    at = rule.doc_path + ("ticket",)
    items: list[tuple[str | int, CompiledTree]] = []
    for key, value in c.fields(rule.ticket, at, "ticket").items():
        where = at + (key,)
        if key == "contact":
            fields = c.fields(value, where, "contact")
            tree: CompiledTree = MappingTree(
                items=tuple((k, c.text(v, where + (k,))) for k, v in fields.items())
            )
        elif key == "message" and isinstance(value, Mapping) and not is_file_reference(value):
            tree = _message(c, value, where)
        elif key in _MAPPINGS:  # values are walked; the mapping itself is never a file reference
            fields = c.fields(value, where, key)
            tree = MappingTree(
                items=tuple((str(k), c.tree(v, where + (k,))) for k, v in fields.items())
            )
        elif key == "tags":
            if not isinstance(value, list | tuple):
                c.problem(where, "expected a list of tags")
                value = []
            tree = ListTree(items=tuple(c.text(tag, where + (i,)) for i, tag in enumerate(value)))
        else:
            tree = c.text(value, where)
        items.append((key, tree))
    return CompiledTicket(rule=rule, tree=MappingTree(items=tuple(items)))


def _message(c: _Compiler, value: Mapping[str, Any], at: DocPath) -> CompiledTree:
    fields = c.fields(value, at, "message")
    if "text" not in fields:
        c.problem(at, "message: text is required")
    direction = fields.get("direction", Direction.INCOMING.value)
    if direction not in {d.value for d in Direction}:
        shown = c.config.show(direction, at + ("direction",))
        c.problem(at + ("direction",), f"direction {shown} is not one of: {', '.join(Direction)}")
        direction = Direction.INCOMING.value
    text = c.text(fields.get("text"), at + ("text",))
    return MappingTree(items=(("text", text), ("direction", ConstantTree(value=direction))))


def _text(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _given(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


# -- the render context ------------------------------------------------------------------------


def event_context(
    event: StoredEvent, *, vars: Mapping[str, Any], now: dt.datetime
) -> dict[str, Any]:
    """What templates see of one stored event (DESIGN §2.5), before a rule is chosen."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    received = dt.datetime.fromtimestamp(event.received_at, dt.UTC)
    return {
        "body": json.loads(event.payload),
        "headers": dict(event.headers),
        "query": dict(event.query),
        "source": event.source,
        "event": {
            "id": event.id,
            "received_at": received.isoformat().replace("+00:00", "Z"),
            "dedupe_key": event.dedupe_key,
        },
        "vars": vars,
        "now": now.astimezone(dt.UTC),
    }


def rule_context(base: Mapping[str, Any], rule_name: str) -> dict[str, Any]:
    """`base` plus `rule`; a shallow copy, the body is shared (templates cannot change it)."""
    return {**base, "rule": {"name": rule_name}}
