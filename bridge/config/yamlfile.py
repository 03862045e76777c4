"""One YAML file read into plain Python values, with the line of every node.

PyYAML's SafeLoader composes the node graph (so anchors, aliases and `<<` merge keys work):
libyaml's CSafeLoader where PyYAML has it, several times faster on a file of thousands of
rules; a file it refuses is read again by the Python loader, so that every problem is worded
as that one words it. The values are then built here, recording for each node its in-file
path and line: for a mapping value, the line of its key (where a reader looks); for a list
item, the item's own line. Duplicate keys in one mapping are a problem naming both lines
(PyYAML silently keeps the last). Errors from yaml never escape this module: they become
Problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from bridge.config.model import DocPath, format_path
from bridge.exceptions import Problem

_FAST_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + name for name in ("null", "bool", "int", "float", "str")}
_STR = _TAG + "str"
_TIMESTAMP = _TAG + "timestamp"  # kept as the text written: ISO strings are data here
_MERGE = _TAG + "merge"
MAX_NODES = 200_000  # a guard against alias bombs ("billion laughs")
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
        root = _compose(text)
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_problem(exc, file)]
    except yaml.YAMLError as exc:  # ReaderError: a control character, ...
        return None, [Problem(file=file, line=0, path="", message=f"not valid YAML: {exc}")]
    except RecursionError:
        return None, [Problem(file=file, line=0, path="", message="nested too deeply")]
    if root is None:
        return YamlDocument(file=file, data=None, lines={}), []
    builder = _Builder(file)
    try:
        data = builder.build(root, (), root.start_mark.line + 1)
    except (_TooLarge, RecursionError) as exc:
        message = "nested too deeply" if isinstance(exc, RecursionError) else _TOO_LARGE
        return None, [Problem(file=file, line=root.start_mark.line + 1, path="", message=message)]
    if builder.problems:
        return None, builder.problems
    return YamlDocument(file=file, data=data, lines=builder.lines), []


def _compose(text: str) -> Node | None:
    try:
        return yaml.compose(text, Loader=_FAST_LOADER)
    except (yaml.YAMLError, RecursionError):
        return yaml.compose(text, Loader=yaml.SafeLoader)  # raises, worded as always


def _syntax_problem(exc: yaml.MarkedYAMLError, file: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    message = exc.problem or "not valid YAML"
    if exc.context and message.startswith("but "):  # "expected a single document, but found ..."
        message = f"{exc.context}, {message}"
    elif exc.context:
        context_line = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
        message = f"{message} ({exc.context}{context_line})"
    return Problem(file=file, line=mark.line + 1 if mark else 0, path="", message=message)


class _TooLarge(Exception):
    pass


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[DocPath, int] = {}
        self.problems: list[Problem] = []
        self._count = 0
        self._active: set[int] = set()  # nodes being built: an alias back into one is a cycle
        self._constructor = yaml.SafeLoader("")

    def problem(self, line: int, path: DocPath, message: str) -> None:
        self.problems.append(
            Problem(file=self.file, line=line, path=format_path(path), message=message)
        )

    def build(self, node: Node, path: DocPath, line: int) -> Any:
        self.lines[path] = line
        self._count += 1
        if self._count > MAX_NODES:
            raise _TooLarge
        if isinstance(node, ScalarNode):
            return self.scalar(node, path, line)
        if id(node) in self._active:
            self.problem(line, path, "an alias refers back to a node that contains it")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, MappingNode) and node.tag == _TAG + "map":
                return self.mapping(node, path)
            if isinstance(node, SequenceNode) and node.tag == _TAG + "seq":
                return [
                    self.build(item, (*path, i), _line(item)) for i, item in enumerate(node.value)
                ]
            self.problem(line, path, f"unsupported YAML tag {_short(node.tag)}")
            return None
        finally:
            self._active.discard(id(node))

    def scalar(self, node: ScalarNode, path: DocPath, line: int) -> Any:
        if node.tag == _STR:  # most values: the text as it is, without the constructor's walk
            return str(node.value)
        if node.tag == _TIMESTAMP:
            return str(node.value)
        if node.tag not in _SCALAR_TAGS:
            self.problem(line, path, f"unsupported YAML tag {_short(node.tag)}")
            return None
        return self._constructor.construct_object(node)

    def mapping(self, node: MappingNode, path: DocPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        inherited: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                inherited.extend(self.merge_sources(value_node, path, {id(node)}))
                continue
            key = self.key(key_node, path)
            if key is None:
                continue
            line = _line(key_node)
            if key in first_line:
                where = f"{self.file}:{first_line[key]} and {self.file}:{line}"
                self.problem(line, (*path, key), f"key '{key}' is defined twice: {where}")
                continue
            first_line[key] = line
            out[key] = self.build(value_node, (*path, key), line)
        for key_node, value_node in inherited:  # `<<`: explicit keys win, then earlier sources
            key = self.key(key_node, path)
            if key is not None and key not in out:
                out[key] = self.build(value_node, (*path, key), _line(key_node))
        return out

    def merge_sources(self, node: Node, path: DocPath, seen: set[int]) -> list[tuple[Node, Node]]:
        """The (key, value) pairs a `<<` brings in, nested merges flattened, first wins."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        pairs: list[tuple[Node, Node]] = []
        for source in sources:
            if not isinstance(source, MappingNode):
                self.problem(_line(source), path, "`<<` needs a mapping or a list of mappings")
                continue
            if id(source) in seen:
                self.problem(_line(source), path, "`<<` refers back to a mapping that contains it")
                continue
            pairs.extend((k, v) for k, v in source.value if k.tag != _MERGE)
            for key_node, value_node in source.value:
                if key_node.tag == _MERGE:
                    pairs.extend(self.merge_sources(value_node, path, seen | {id(source)}))
        return pairs

    def key(self, node: Node, path: DocPath) -> str | None:
        if not isinstance(node, ScalarNode):
            self.problem(_line(node), path, "a key must be plain text, not a list or a mapping")
            return None
        return str(node.value)  # as written: `on:` stays "on", `200:` is "200"
