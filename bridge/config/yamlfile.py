"""One YAML file read into plain Python values, with the line of every node.

The values are built from the parser's events as they come (libyaml's CSafeLoader where
PyYAML has it; a file it refuses is read again by the Python loader, so that every problem is
worded as that one words it), recording for each node its in-file path and line: for a mapping
value, the line of its key (where a reader looks); for a list item, the item's own line.
Anchors, aliases and `<<` merge keys work as in PyYAML's SafeLoader; duplicate keys in one
mapping are a problem naming both lines (PyYAML silently keeps the last). Errors from yaml
never escape this module: they become Problems.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from yaml.nodes import ScalarNode

from bridge.config.model import DocPath, format_path
from bridge.exceptions import Problem

_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + name for name in ("null", "bool", "int", "float", "str")}
_STR = _TAG + "str"
_TIMESTAMP = _TAG + "timestamp"  # kept as the text written: ISO strings are data here
MAX_NODES = 200_000  # values aliases may repeat: a guard against alias bombs ("billion laughs")
MAX_DEPTH = 200  # lists and mappings inside each other
_TOO_LARGE = f"more than {MAX_NODES} values once aliases are expanded"


@dataclass(frozen=True, kw_only=True)
class YamlDocument:
    """A file's data and, for each in-file path (("rules", 0, "name")), its 1-based line."""

    file: str
    data: Any
    lines: dict[DocPath, int]


def read_yaml(path: Path, *, file: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Read `path`; `file` is how problems name it. None with the problems when it is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(file=file, line=0, path="", message=f"not UTF-8 text: {exc.reason}")]
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        return None, [Problem(file=file, line=0, path="", message=f"cannot read: {reason}")]
    return parse_yaml(text, file=file)


def parse_yaml(text: str, *, file: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse one YAML document (an empty text is None)."""
    try:
        try:
            builder = _Builder(file, yaml.parse(text, Loader=_FAST_LOADER))
        except yaml.YAMLError:
            builder = _Builder(file, yaml.parse(text, Loader=yaml.SafeLoader))  # worded as always
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_problem(exc, file)]
    except yaml.YAMLError as exc:  # ReaderError: a control character, ...
        return None, [Problem(file=file, line=0, path="", message=f"not valid YAML: {exc}")]
    if builder.problems:
        return None, builder.problems
    return YamlDocument(file=file, data=builder.root, lines=dict(builder.lines)), []


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    message = exc.problem or "not valid YAML"
    if exc.context and message.startswith("but "):  # "expected a single document, but found ..."
        message = f"{exc.context}, {message}"
    elif exc.context:
        context_line = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
        message = f"{message} ({exc.context}{context_line})"
    return Problem(file=file, line=mark.line + 1 if mark else 0, path="", message=message)


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


class _TooLarge(Exception):
    pass


class _TooDeep(Exception):
    pass


_UNSET: Any = object()  # a mapping waiting for its next key
_SKIP: Any = object()  # a key that is a problem: its value is read and dropped
_MERGE_KEY: Any = object()  # `<<`: the value is a mapping (or list of them) to inherit from
_BROKEN: Any = object()  # an alias that is a problem (already reported)


class _Frame:
    """A mapping or list being built: where it is, and what its next event goes into."""

    __slots__ = ("value", "path", "line", "start", "anchor", "key", "key_line", "seen", "merges")

    def __init__(
        self, value: dict[str, Any] | list[Any], path: DocPath, line: int, start: int
    ) -> None:
        self.value = value
        self.path = path
        self.line = line
        self.start = start  # where its lines begin in _Builder.lines
        self.anchor: str | None = None
        self.key: Any = _UNSET  # the key whose value comes next (mappings)
        self.key_line = 0
        self.seen: dict[str, int] = {}  # each key's line, for a key written twice
        self.merges: list[tuple[Any, int, list[tuple[DocPath, int]]]] = []  # `<<` sources


@dataclass(frozen=True)
class _Anchored:
    value: Any
    line: int
    lines: list[tuple[DocPath, int]]  # the value's lines, by path relative to it (first: its own)
    text: str | None  # a scalar's text as written: an aliased key is that text


class _Builder:
    """Plain values and their lines, built from the parser's events as they come: composing
    PyYAML's node graph first (a node and two Marks for every value) was most of the memory
    and time of reading 10,000 rules, and the half-empty arenas it left outlived it."""

    def __init__(self, file: str, events: Iterator[Event]) -> None:
        self.file = file
        self.root: Any = None
        self.lines: list[tuple[DocPath, int]] = []  # in document order: a subtree is a slice
        self.problems: list[Problem] = []
        self._stack: list[_Frame] = []
        self._anchors: dict[str, _Anchored | None] = {}  # None while its node is being built
        self._anchor_lines: dict[str, int] = {}
        self._skipping = 0  # depth inside a node that is read and dropped
        self._skipped: tuple[_Frame | None, DocPath, int] | None = None  # where it would go
        self._expanded = 0  # values that aliases repeat
        self._strings: dict[str, str] = {}  # one object for each repeated text (keys, names)
        self._resolver = yaml.SafeLoader("")
        self._line = 1  # the line of the event being read
        try:
            self._read(events)
        except _TooLarge:
            self.problem(self._line, (), _TOO_LARGE)
        except _TooDeep:
            self.problem(self._line, (), "nested too deeply")

    def problem(self, line: int, path: DocPath, message: str) -> None:
        self.problems.append(
            Problem(file=self.file, line=line, path=format_path(path), message=message)
        )

    def _read(self, events: Iterator[Event]) -> None:
        documents = 0
        for event in events:
            self._line = event.start_mark.line + 1 if event.start_mark else self._line
            kind = type(event)
            if self._skipping:
                self._skip(kind)
            elif isinstance(event, (ScalarEvent, AliasEvent)):
                self._node(event)
            elif isinstance(event, (MappingStartEvent, SequenceStartEvent)):
                self._open(event)
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                self._close()
            elif kind is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    message = "expected a single document in the stream, but found another document"
                    self.problem(self._line, (), message)
                    return

    def _skip(self, kind: type[Event]) -> None:
        if kind is MappingStartEvent or kind is SequenceStartEvent:
            self._skipping += 1
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            self._skipping -= 1
        if self._skipping == 0 and self._skipped is not None:  # an unsupported node: None
            frame, path, line = self._skipped
            self._put(frame, path, line, None, len(self.lines))
        elif self._skipping == 0:  # a list or mapping as a key: its value is dropped
            self._stack[-1].key = _SKIP

    def _place(self, event: NodeEvent) -> tuple[_Frame | None, DocPath, int] | None:
        """Where the node of `event` goes; None when it is a mapping's key (taken here)."""
        if not self._stack:
            return None, (), self._line
        frame = self._stack[-1]
        if isinstance(frame.value, list):
            return frame, (*frame.path, len(frame.value)), self._line
        if frame.key is _UNSET:
            self._key(frame, event)
            return None
        return frame, (*frame.path, frame.key), frame.key_line

    def _key(self, frame: _Frame, event: NodeEvent) -> None:
        frame.key_line = self._line
        key: Any = _SKIP
        if isinstance(event, ScalarEvent):
            merge = event.value == "<<" and event.tag is None and event.implicit[0]
            key = _MERGE_KEY if merge else self._text(event.value)
            if event.anchor is not None:  # `? &k x`: *k is the text, as a key or a value
                self._anchor(event.anchor)
                lines: list[tuple[DocPath, int]] = [((), self._line)]
                self._anchors[event.anchor] = _Anchored(key, self._line, lines, text=key)
        elif isinstance(event, AliasEvent):
            aliased = self._anchors.get(event.anchor or "")
            if aliased is not None and aliased.text is not None:
                key = aliased.text
        frame.key = key
        if key is _SKIP:
            self.problem(
                self._line, frame.path, "a key must be plain text, not a list or a mapping"
            )
            if not isinstance(event, AliasEvent):  # read the key's own nodes, then drop its value
                frame.key = _UNSET
                self._skipping, self._skipped = 1, None
        elif key in frame.seen:
            where = f"{self.file}:{frame.seen[key]} and {self.file}:{self._line}"
            message = f"key '{key}' is defined twice: {where}"
            self.problem(self._line, (*frame.path, key), message)
            frame.key = _SKIP
        elif key is not _MERGE_KEY:
            frame.seen[key] = self._line

    def _node(self, event: ScalarEvent | AliasEvent) -> None:
        place = self._place(event)
        if place is None:
            return
        frame, path, line = place
        start = len(self.lines)
        if isinstance(event, AliasEvent):
            value = self._alias(event, frame, path, line)
        else:
            value = self._scalar(event, path, line)
            self.lines.append((path, line))
            if event.anchor is not None:
                self._anchor(event.anchor)
                self._anchored(event.anchor, start, value, text=self._text(event.value))
        self._put(frame, path, line, value, start)

    def _alias(self, event: AliasEvent, frame: _Frame | None, path: DocPath, line: int) -> Any:
        if event.anchor not in self._anchors:
            self.problem(self._line, (), f"found undefined alias '{event.anchor}'")
            return _BROKEN
        anchored = self._anchors[event.anchor]
        if anchored is None:
            if frame is not None and frame.key is _MERGE_KEY:
                self.problem(line, frame.path, "`<<` refers back to a mapping that contains it")
            else:
                self.problem(line, path, "an alias refers back to a node that contains it")
            return _BROKEN
        self._expanded += len(anchored.lines)
        if self._expanded > MAX_NODES:
            raise _TooLarge
        if frame is not None and isinstance(frame.value, list):
            line = anchored.line  # a list item's line is its node's own
        self.lines.append((path, line))
        self.lines.extend(((*path, *rest), at) for rest, at in anchored.lines[1:])
        return copy.deepcopy(anchored.value)

    def _scalar(self, event: ScalarEvent, path: DocPath, line: int) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolver.resolve(ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
        if tag in (_STR, _TIMESTAMP):  # most values: the text, without the constructor
            return self._text(event.value)
        if tag not in _SCALAR_TAGS:
            self.problem(line, path, f"unsupported YAML tag {_short(tag)}")
            return None
        return self._resolver.construct_object(ScalarNode(tag, event.value))

    def _open(self, event: MappingStartEvent | SequenceStartEvent) -> None:
        place = self._place(event)
        if place is None:
            return
        parent, path, line = place
        mapping = isinstance(event, MappingStartEvent)
        if event.tag not in (None, "!", _TAG + ("map" if mapping else "seq")):
            self.problem(line, path, f"unsupported YAML tag {_short(event.tag)}")
            self._skipping, self._skipped = 1, place
            return
        if len(self._stack) >= MAX_DEPTH:
            raise _TooDeep
        frame = _Frame({} if mapping else [], path, line, len(self.lines))
        if event.anchor is not None:
            frame.anchor = event.anchor
            self._anchor(event.anchor)
        self.lines.append((path, line))
        self._stack.append(frame)

    def _close(self) -> None:
        frame = self._stack.pop()
        if frame.merges:
            self._inherit(frame)
        if frame.anchor is not None:
            self._anchored(frame.anchor, frame.start, frame.value)
        parent = self._stack[-1] if self._stack else None
        self._put(parent, frame.path, frame.line, frame.value, frame.start)

    def _put(self, frame: _Frame | None, path: DocPath, line: int, value: Any, start: int) -> None:
        if frame is None:
            self.root = value
        elif isinstance(frame.value, list):
            frame.value.append(value)
        else:
            if (
                frame.key is _MERGE_KEY and value is not _BROKEN
            ):  # inherited when the mapping ends, at the source's lines
                relative = [(p[len(path) :], at) for p, at in self.lines[start:]]
                frame.merges.append((value, line, relative))
            if frame.key is _MERGE_KEY or frame.key is _SKIP:
                del self.lines[start:]
            else:
                frame.value[frame.key] = value
            frame.key = _UNSET

    def _inherit(self, frame: _Frame) -> None:
        """`<<`: explicit keys win, then earlier sources; a list of sources is read in order."""
        out = frame.value
        assert isinstance(out, dict)
        for value, line, lines in frame.merges:
            if isinstance(value, list):
                sources = [
                    (item, [(p[1:], at) for p, at in lines if p[:1] == (i,)])
                    for i, item in enumerate(value)
                ]
            else:
                sources = [(value, lines)]
            for source, source_lines in sources:
                if not isinstance(source, dict):
                    self.problem(line, frame.path, "`<<` needs a mapping or a list of mappings")
                    continue
                taken = [key for key in source if key not in out]
                out.update((key, source[key]) for key in taken)
                self.lines.extend(
                    ((*frame.path, *p), at) for p, at in source_lines if p[:1] and p[0] in taken
                )

    def _anchor(self, anchor: str) -> None:
        if anchor in self._anchor_lines:
            first = self._anchor_lines[anchor]
            first_at = f"first occurrence at line {first}"
            message = f"second occurrence (found duplicate anchor '{anchor}'; {first_at})"
            self.problem(self._line, (), message)
        self._anchor_lines[anchor] = self._line
        self._anchors[anchor] = None

    def _anchored(self, anchor: str, start: int, value: Any, text: str | None = None) -> None:
        path, line = self.lines[start]
        lines = [(p[len(path) :], at) for p, at in self.lines[start:]]
        self._anchors[anchor] = _Anchored(value=value, line=line, lines=lines, text=text)

    def _text(self, text: str) -> str:
        return self._strings.setdefault(text, text)
