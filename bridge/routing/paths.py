"""Paths into an event (DESIGN §2.3): parse `body.items.0.sku`, look them up, write them back.

Grammar: a root name, then any number of `.segment` or `[...]` parts.

    body.a.b                 ("body", "a", "b")
    body.items.0.sku         ("body", "items", 0, "sku")     digits are an index...
    body["First Name"]       ("body", "First Name")          ...quoted keys never are
    body['x'].y              ("body", "x", "y")
    headers.x-github-event   ("headers", "x-github-event")   dashes are fine in dotted segments

A dotted segment is any run of characters other than whitespace, `.`, `[`, `]`, quotes and
backslash. A segment of 1 to 18 digits without a leading zero is an int: it indexes a list and,
against a mapping, looks up the key written the same way. Inside `["..."]` or `['...']` a
backslash escapes the next character. A missing path is ABSENT, never an error.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any, Final

ROOTS: Final = ("body", "headers", "query", "source", "event", "vars")

# A parsed path: the root name, then keys (str) and indexes (int).
EventPath = tuple[str | int, ...]

_DOTTED: Final = re.compile(r"[^\s.\[\]\"'\\]+")
_INDEX: Final = re.compile(r"0|[1-9][0-9]{0,17}")
_MAX_INDEX: Final = 10**18


class PathError(ValueError):
    """A path that cannot be parsed; the message names the path and what is wrong."""


class _Absent(enum.Enum):
    ABSENT = "absent"

    def __repr__(self) -> str:
        return "<absent>"


# What lookup returns for a path that leads nowhere: equal to nothing, not even None.
ABSENT: Final = _Absent.ABSENT


def parse_path(text: str) -> EventPath:
    """`body.items.0.sku` -> ("body", "items", 0, "sku"); PathError (a ValueError) if malformed."""
    if not isinstance(text, str):
        raise PathError(f"a path must be a string, not {type(text).__name__}")
    first = _DOTTED.match(text)
    if first is None:
        raise _malformed(text, 0, "a path starts with a root name")
    root = first.group()
    if root not in ROOTS:
        raise PathError(
            f"invalid path {text!r}: unknown root {root!r}; a path starts with one of "
            + ", ".join(ROOTS)
        )
    parts: list[str | int] = [root]
    pos = first.end()
    while pos < len(text):
        char = text[pos]
        if char == ".":
            found = _DOTTED.match(text, pos + 1)
            if found is None:
                if pos + 1 >= len(text) or text[pos + 1] in ".[":
                    raise _malformed(text, pos + 1, "empty segment")
                raise _malformed(text, pos + 1, f'{text[pos + 1]!r} needs quoting: write ["..."]')
            segment = found.group()
            parts.append(int(segment) if _INDEX.fullmatch(segment) else segment)
            pos = found.end()
        elif char == "[":
            bracketed, pos = _bracket(text, pos)
            parts.append(bracketed)
        else:
            raise _malformed(text, pos, f'unexpected {char!r}; quote such keys: ["..."]')
    return tuple(parts)


def _bracket(text: str, start: int) -> tuple[str | int, int]:
    """Parse `[...]` at text[start]; return the segment and the position after `]`."""
    pos = start + 1
    if pos >= len(text):
        raise _malformed(text, start, "unclosed bracket")
    quote = text[pos]
    if quote in "\"'":
        chars: list[str] = []
        pos += 1
        while pos < len(text) and text[pos] != quote:
            if text[pos] == "\\":
                pos += 1
                if pos >= len(text):
                    break
            chars.append(text[pos])
            pos += 1
        if pos >= len(text):
            raise _malformed(text, start, "unclosed quote")
        pos += 1
        if pos >= len(text):
            raise _malformed(text, start, "unclosed bracket")
        if text[pos] != "]":
            raise _malformed(text, pos, f"expected ']' after the quoted key, found {text[pos]!r}")
        return "".join(chars), pos + 1
    end = text.find("]", pos)
    if end < 0:
        raise _malformed(text, start, "unclosed bracket")
    inner = text[pos:end]
    if not _INDEX.fullmatch(inner):
        what = "empty brackets" if not inner else f"[{inner}] is neither an index nor quoted"
        raise _malformed(text, start, f'{what}; write [0] or ["key"]')
    return int(inner), end + 1


def _malformed(text: str, pos: int, why: str) -> PathError:
    return PathError(f"invalid path {text!r}: {why} (at position {pos})")


def format_path(parts: EventPath) -> str:
    """The inverse of parse_path: ("body", "First Name", 0) -> body["First Name"].0"""
    if not parts or parts[0] not in ROOTS:
        raise PathError("a path starts with one of " + ", ".join(ROOTS))
    out = [str(parts[0])]
    for part in parts[1:]:
        if isinstance(part, bool) or (isinstance(part, int) and not 0 <= part < _MAX_INDEX):
            raise PathError(f"{part!r} is not a list index")
        if isinstance(part, int) or _DOTTED.fullmatch(part) and not _INDEX.fullmatch(part):
            out.append(f".{part}")
        else:
            out.append('["' + part.replace("\\", "\\\\").replace('"', '\\"') + '"]')
    return "".join(out)


def lookup(context: Mapping[str, Any], path: EventPath) -> Any:
    """The value at `path`, or ABSENT when any step is missing or of the wrong type."""
    current: Any = context
    for part in path:
        if isinstance(current, dict):
            if isinstance(part, str):
                current = current.get(part, ABSENT)
            else:
                current = _int_key(current, part)
        elif isinstance(current, list | tuple):
            index = _as_index(part)
            if not 0 <= index < len(current):
                return ABSENT
            current = current[index]
        elif isinstance(current, Mapping):
            current = _mapping_get(current, part)
        else:
            return ABSENT
        if current is ABSENT:
            return ABSENT
    return current


def _as_index(part: str | int) -> int:
    """An int segment, or a str of digits, as a list index; -1 when it cannot be one."""
    if isinstance(part, int):
        return part
    if part.isascii() and part.isdigit() and len(part) <= 18:
        return int(part)
    return -1


def _int_key(mapping: dict[Any, Any], part: int) -> Any:
    if -_MAX_INDEX < part < _MAX_INDEX:
        found = mapping.get(str(part), ABSENT)
        if found is not ABSENT:
            return found
    return mapping.get(part, ABSENT)


def _mapping_get(mapping: Mapping[Any, Any], part: str | int) -> Any:
    """Any other Mapping (request headers...): whatever it raises for a strange key is absence."""
    keys: tuple[str | int, ...] = (part,)
    if isinstance(part, int):
        keys = (str(part), part) if -_MAX_INDEX < part < _MAX_INDEX else (part,)
    for key in keys:
        try:
            return mapping[key]
        except (LookupError, TypeError, ValueError, AttributeError):
            continue
    return ABSENT
