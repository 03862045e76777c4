"""`${NAME}` and `${NAME:-default}` in YAML strings, replaced from the environment at load time.

- `${NAME}`: the variable's value (set but empty is empty); unset is a problem.
- `${NAME:-default}`: the default when the variable is unset or empty (as in the shell).
- `$${` is a literal `${`; `${{` is left as written (a dollar sign before a Jinja `{{ }}`).
- Any other `${` is a problem, so a typo never silently becomes part of a secret.

Keys are never interpolated. Problems name the variable, never a value; which strings came from
the environment is remembered so that messages can avoid showing them and so that the secrets
among them can be masked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.config.model import DocPath

_START = re.compile(r"\$\$\{|\$\{")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, kw_only=True)
class Substituted:
    text: str
    variables: tuple[str, ...] = ()  # every variable referenced
    missing: tuple[str, ...] = ()  # referenced, unset, without a default
    malformed: bool = False  # a `${` that is not a reference
    env_values: tuple[str, ...] = ()  # the non-empty values taken from the environment


def substitute(text: str, environ: Mapping[str, str]) -> Substituted:
    """Replace every reference in `text` (one string, no recursion into values or defaults)."""
    if "${" not in text:
        return Substituted(text=text)
    out: list[str] = []
    variables: list[str] = []
    missing: list[str] = []
    env_values: list[str] = []
    malformed = False
    pos = 0
    while (start := _START.search(text, pos)) is not None:
        out.append(text[pos : start.start()])
        if start.group() == "$${" or text.startswith("${{", start.start()):
            out.append("${")
            pos = start.end()
            continue
        reference = _REFERENCE.match(text, start.start())
        if reference is None:
            malformed = True
            out.append("${")
            pos = start.end()
            continue
        name, default = reference.groups()
        variables.append(name)
        value = environ.get(name)
        if default is not None and not value:
            out.append(default)
        elif value is None:
            missing.append(name)
        else:
            out.append(value)
            if value:
                env_values.append(value)
        pos = reference.end()
    out.append(text[pos:])
    return Substituted(
        text="".join(out),
        variables=tuple(variables),
        missing=tuple(missing),
        malformed=malformed,
        env_values=tuple(env_values),
    )


@dataclass(kw_only=True)
class Interpolation:
    """The interpolated document and what a caller needs to know about where values came from."""

    data: Any
    problems: list[tuple[DocPath, str]] = field(default_factory=list)
    variables: dict[DocPath, tuple[str, ...]] = field(default_factory=dict)  # path -> names used
    env_values: dict[DocPath, tuple[str, ...]] = field(default_factory=dict)  # for secret masking
    missing: set[DocPath] = field(default_factory=set)  # strings left broken by a problem


def interpolate(data: Any, environ: Mapping[str, str]) -> Interpolation:
    """Interpolate every string value (not key) of `data`, a tree of dicts, lists and scalars."""
    result = Interpolation(data=None)
    result.data = _walk(data, (), environ, result)
    return result


def _walk(value: Any, path: DocPath, environ: Mapping[str, str], result: Interpolation) -> Any:
    """`value` interpolated: the same object where nothing in it changed, so that a
    configuration of 10,000 rules and no `${` is not held twice."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        done = substitute(value, environ)
        if done.variables:
            result.variables[path] = done.variables
        if done.env_values:
            result.env_values[path] = done.env_values
        for name in dict.fromkeys(done.missing):
            result.missing.add(path)
            message = (
                f"environment variable {name} is not set (write ${{{name}:-}} if empty is fine)"
            )
            result.problems.append((path, message))
        if done.malformed:
            result.missing.add(path)
            message = "'${' must begin ${NAME} or ${NAME:-default}; write $${ for a literal ${"
            result.problems.append((path, message))
        return done.text
    if isinstance(value, dict):
        changed = {}
        for key, item in value.items():
            new = _walk(item, (*path, key), environ, result)
            if new is not item:
                changed[key] = new
        return {**value, **changed} if changed else value
    if isinstance(value, list):
        items = [_walk(item, (*path, i), environ, result) for i, item in enumerate(value)]
        return (
            items if any(new is not old for new, old in zip(items, value, strict=True)) else value
        )
    return value
