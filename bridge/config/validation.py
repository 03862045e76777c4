"""Checks on the merged document: the JSON Schema, then the cross-references.

Both produce findings, `(merged document path, message)`; the loader turns them into Problems
with the file and line of that path. Every finding is collected: nothing stops at the first.
jsonschema's own messages are not used as they are: they print whole instances (which may hold
values from the environment) and read poorly after an `anyOf`. Each error is rewritten here,
and an `anyOf` is explained by the one alternative whose shape fits the value, or by the
`errorMessage` the schema gives it (the keyword VS Code also understands).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Mapping
from importlib import resources
from pathlib import Path, PurePath
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import SchemaError, best_match

from bridge.config.model import DocPath, Location
from bridge.config.quoting import Variables, did_you_mean, not_defined, show_value

Finding = tuple[DocPath, str]
SECRET_LISTS = ("secrets", "values", "passwords")
_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "null",
}


def load_schema() -> dict[str, Any]:
    """The JSON Schema of a rules file (what `ticketbridge schema` prints); a fresh copy."""
    loaded: dict[str, Any] = json.loads(_schema_text())
    return loaded


@functools.cache
def _schema_text() -> str:
    return resources.files("bridge.config").joinpath("schema.json").read_text(encoding="utf-8")


@functools.cache
def _validator() -> Draft202012Validator:
    schema = load_schema()
    return Draft202012Validator(_inline(schema, schema["$defs"]))


def _inline(node: Any, defs: Mapping[str, Any], within: tuple[str, ...] = ()) -> Any:
    """`node` with each `{"$ref": "#/$defs/NAME"}` replaced by that definition: the schema
    has no recursion, and a lookup per reference was a third of validating 10,000 rules."""
    if isinstance(node, list):
        return [_inline(item, defs, within) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) == 1 and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in within:
            raise ValueError(f"schema.json: $defs/{name} refers to itself")
        return _inline(defs[name], defs, (*within, name))
    return {key: _inline(value, defs, within) for key, value in node.items()}


# --- JSON Schema ---------------------------------------------------------------------------


def schema_findings(document: Mapping[str, Any], variables: Variables) -> list[Finding]:
    findings: list[Finding] = []
    for error in _validator().iter_errors(document):
        findings.extend(_explain(error, variables))
    return findings


def _explain(error: ValidationError, variables: Variables) -> list[Finding]:
    path: DocPath = tuple(error.absolute_path)
    kind, instance, schema = error.validator, error.instance, error.schema
    expected: Any = error.validator_value
    if kind in ("anyOf", "oneOf") and error.context:
        return _explain_alternatives(error, variables)
    if kind == "required" and isinstance(instance, dict):
        return [(path, f"missing required key '{key}'") for key in expected if key not in instance]
    if kind == "additionalProperties" and isinstance(instance, dict) and isinstance(schema, dict):
        known = [str(key) for key in schema.get("properties", {})]
        return [
            ((*path, key), f"unknown key '{key}'{did_you_mean(key, known)}")
            for key in instance
            if key not in known
        ]
    if "propertyNames" in error.absolute_schema_path:  # the key itself is what is wrong
        path = (*path, str(instance))
    shown = show_value(instance, path, variables)
    if kind == "type":
        wanted = [expected] if isinstance(expected, str) else list(expected)
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted)
        return [(path, f"{_subject(instance, shown)}must be {words}, not {_kind(instance)}")]
    if kind == "enum":
        return [(path, f"{shown} is not one of {', '.join(str(v) for v in expected)}")]
    if kind == "const":
        return [(path, f"{shown} must be {json.dumps(expected)}")]
    if kind == "pattern":
        hint = schema.get("patternErrorMessage") if isinstance(schema, dict) else None
        return [(path, f"{shown} {hint or f'does not match the pattern {expected}'}")]
    comparisons = {
        "minimum": ">=",
        "exclusiveMinimum": ">",
        "maximum": "<=",
        "exclusiveMaximum": "<",
    }
    if kind in comparisons:
        return [(path, f"{shown} must be {comparisons[kind]} {expected}")]
    if kind in ("minLength", "minItems", "minProperties"):
        return [(path, "must not be empty" if expected == 1 else f"must have at least {expected}")]
    return [(path, f"does not satisfy {kind}: {json.dumps(expected)}")]


def _explain_alternatives(error: ValidationError, variables: Variables) -> list[Finding]:
    """Explain a failed anyOf by the alternatives the value's shape fits, else by errorMessage."""
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def fails_at_root(errors: list[ValidationError], kind: str) -> bool:
        return any(e.validator == kind and not e.relative_path for e in errors)

    fitting = [b for b in branches.values() if not fails_at_root(b, "type")]
    closer = [b for b in fitting if not fails_at_root(b, "required")]
    fitting = closer or fitting
    if len(fitting) == 1:
        return [finding for sub in fitting[0] for finding in _explain(sub, variables)]
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if custom:
        path: DocPath = tuple(error.absolute_path)
        shown = show_value(error.instance, path, variables)
        return [(path, f"{_subject(error.instance, shown)}{custom}")]
    best = best_match(error.context or ())
    return _explain(best, variables) if best is not None else []


def _subject(value: Any, shown: str) -> str:
    """What a "must be ..." message begins with: the value where it is a plain one."""
    return f"{shown} " if isinstance(value, str | int | float | bool) else ""


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "a mapping"


# --- cross-references ----------------------------------------------------------------------


def _entries(document: Mapping[str, Any], key: str) -> dict[str, dict[str, Any]]:
    section = document.get(key)
    if not isinstance(section, dict):
        return {}
    return {name: value for name, value in section.items() if isinstance(value, dict)}


def reference_findings(
    document: Mapping[str, Any],
    variables: Variables,
    *,
    rules_dir: Path,
    locate: Callable[[DocPath], Location],
) -> tuple[list[Finding], dict[str, dict[str, Any]]]:
    """Rules name defined sources and providers, rule names are unique, default rules exist,
    schema files load, no two sources share a URL path. Also returns the loaded schemas."""
    findings: list[Finding] = []
    providers, sources = _entries(document, "providers"), _entries(document, "sources")
    raw_rules = document.get("rules")
    rules = list(raw_rules) if isinstance(raw_rules, list) else []
    rule_names = [
        r["name"] for r in rules if isinstance(r, dict) and isinstance(r.get("name"), str)
    ]

    def undefined(what: str, value: Any, path: DocPath, defined: Collection[str]) -> None:
        findings.append((path, not_defined(what, value, path, variables, defined)))

    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        names = rule.get("source")
        refs: list[tuple[DocPath, Any]] = []
        if isinstance(names, str):
            refs = [(("rules", i, "source"), names)]
        if isinstance(names, list):
            refs = [(("rules", i, "source", j), name) for j, name in enumerate(names)]
        for path, name in refs:
            if isinstance(name, str) and name not in sources:
                undefined("source", name, path, sources)
        provider = rule.get("provider")
        if isinstance(provider, str) and provider not in providers:
            undefined("provider", provider, ("rules", i, "provider"), providers)
        ticket = rule.get("ticket")
        if "fold" in rule and not (isinstance(ticket, dict) and "correlate" in ticket):
            findings.append(
                (("rules", i, "fold"), "fold needs ticket.correlate: it folds by that key")
            )

    for name, provider in providers.items():
        fallback = provider.get("fallback") if isinstance(provider, dict) else None
        if fallback == name:
            findings.append(
                (("providers", name, "fallback"), "a provider cannot fall back to itself")
            )
        elif isinstance(fallback, str) and fallback not in providers:
            undefined("provider", fallback, ("providers", name, "fallback"), providers)

    findings += _duplicate_rule_names(rules, variables, locate)
    schemas: dict[str, dict[str, Any]] = {}
    paths_taken: dict[str, str] = {}
    for name, source in sources.items():
        default_rule = source.get("default_rule")
        if isinstance(default_rule, str) and default_rule not in rule_names:
            rules_defined = list(dict.fromkeys(rule_names))
            undefined("rule", default_rule, ("sources", name, "default_rule"), rules_defined)
        schema_file = source.get("schema")
        if isinstance(schema_file, str):
            at: DocPath = ("sources", name, "schema")
            loaded, message = _load_json_schema(rules_dir, schema_file)
            if loaded is not None:
                schemas[name] = loaded
            else:
                findings.append((at, f"{show_value(schema_file, at, variables)} {message}"))
        url = source.get("path")
        at = ("sources", name, "path") if isinstance(url, str) else ("sources", name)
        url = url if isinstance(url, str) else f"/hooks/{name}"
        if url in paths_taken:
            first = locate(("sources", paths_taken[url]))
            where = f"source '{paths_taken[url]}' ({first.file}:{first.line})"
            findings.append(
                (at, f"URL path {show_value(url, at, variables)} is also used by {where}")
            )
        else:
            paths_taken[url] = name
    return findings, schemas


def _duplicate_rule_names(
    rules: list[Any], variables: Variables, locate: Callable[[DocPath], Location]
) -> list[Finding]:
    findings: list[Finding] = []
    first: dict[str, int] = {}
    for i, name in enumerate(r.get("name") if isinstance(r, dict) else None for r in rules):
        if isinstance(name, str) and name in first:
            a, b = locate(("rules", first[name], "name")), locate(("rules", i, "name"))
            at: DocPath = ("rules", i, "name")
            places = f"{a.file}:{a.line} and {b.file}:{b.line}"
            findings.append(
                (at, f"rule {show_value(name, at, variables)} is defined twice: {places}")
            )
        elif isinstance(name, str):
            first[name] = i
    return findings


def _load_json_schema(rules_dir: Path, relative: str) -> tuple[dict[str, Any] | None, str]:
    """A source's JSON Schema file, or why it cannot be used."""
    if PurePath(relative).is_absolute() or ".." in PurePath(relative).parts:
        return None, "must be a path inside the rules directory"
    try:
        data = json.loads((rules_dir / relative).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"is not a file in {rules_dir}"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot be read: {exc.__class__.__name__}"
    except RecursionError:
        return None, "is not valid JSON: nested too deeply"
    except json.JSONDecodeError as exc:
        return None, f"is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    if not isinstance(data, dict):
        return None, "is not a JSON Schema: it must hold a JSON object"
    try:
        validators.validator_for(data, default=Draft202012Validator).check_schema(data)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "the top level"
        return None, f"is not a valid JSON Schema: at {where}: {exc.message}"
    return data, ""


def drop_empty_secrets(document: Mapping[str, Any], broken: set[DocPath]) -> list[Finding]:
    """Drop empty entries (an unset `${X:-}`) from every verifier's secret lists, in place.
    A verifier left with none is a finding: it must never accept everything. Entries in
    `broken` (already a problem, such as a missing variable) are kept, not reported twice."""
    findings: list[Finding] = []
    for name, source in _entries(document, "sources").items():
        verify = source.get("verify")
        if not isinstance(verify, dict):
            continue
        for key in SECRET_LISTS:
            items = verify.get(key)
            if not isinstance(items, list):
                continue
            at: DocPath = ("sources", name, "verify", key)
            kept = [
                item
                for i, item in enumerate(items)
                if not (isinstance(item, str) and not item.strip()) or (*at, i) in broken
            ]
            verify[key] = kept
            if not kept and items:
                message = "no secret left after dropping empty values"
                findings.append((at, f"{message}: a verifier must never accept everything"))
            elif not items:
                findings.append((at, "must not be empty: a verifier must never accept everything"))
    return findings
