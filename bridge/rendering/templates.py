"""The sandboxed Jinja environment (DESIGN §2.4): compiling templates, expressions and files.

Templates come only from the configuration and the templates directory; payload values reach
them as data in the context and are never compiled. Jinja's errors stay here: compiling raises
`TemplateProblem` (with the template file and line, turned into config `Problem`s by
actions.py), rendering raises `RenderError` naming the template and the line inside it.

Each compiled template also knows the top-level names it reads without defining them itself
(`reads`, jinja2.meta's undeclared variables with their lines, through the files it includes,
imports or extends): the names its context must hold, which the caller checks at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    TemplateSyntaxError,
    Undefined,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.lexer import newline_re
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bridge.exceptions import RenderError
from bridge.rendering.filters import FILTERS, FilterError

TEMPLATES_CHOICE = (
    "give another with --templates DIR or the BRIDGE_TEMPLATES environment variable, "
    "or run `ticketbridge init` to write a working example"
)


class TemplateProblem(Exception):
    """A template that cannot be compiled. `template` is the file (relative to the templates
    directory) the problem is in, None when it is in the source given to compile_string."""

    def __init__(self, message: str, *, line: int | None = None, template: str | None = None):
        self.message = message
        self.line = line
        self.template = template
        super().__init__(f"{template or '<string>'}:{line or '?'}: {message}")


@dataclass(frozen=True, kw_only=True)
class NameRead:
    """A top-level name a template reads and does not define (with {% set %}, a loop, a macro,
    an import): rendering fails unless the context holds it."""

    name: str
    line: int  # of its first read, in `template`
    template: str | None  # the file it is read in; None: the template string itself


@dataclass(frozen=True, kw_only=True)
class CompiledTemplate:
    name: str  # the path under the templates directory, or the caller's name for a string
    template: Template = field(repr=False, compare=False)
    reads: tuple[NameRead, ...] = field(default=(), compare=False)

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            return self.template.render(context)
        except Exception as exc:
            raise _render_error(exc, self.name, self.template.filename) from None


@dataclass(frozen=True, kw_only=True)
class CompiledExpression:
    name: str
    template: Template = field(repr=False, compare=False)
    reads: tuple[NameRead, ...] = field(default=(), compare=False)

    def evaluate(self, context: Mapping[str, Any]) -> Any:
        try:
            ctx = self.template.new_context(dict(context))
            try:
                for _ in self.template.root_render_func(ctx):
                    pass
            except Exception:
                self.template.environment.handle_exception()  # maps frames to template lines
            result = ctx.vars["result"]
            if isinstance(result, Undefined):
                result._fail_with_undefined_error()
            return result
        except Exception as exc:
            raise _render_error(exc, self.name, self.template.filename) from None


_DICT_NAMES = frozenset(dir(dict))


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with a short way through the lookup templates make most:
    `body.data.object.amount`, a key of a parsed body. Jinja tries the attribute first and
    reads the key only after getattr has raised; a dict has no attributes but its methods
    (dir(dict)), so for any other name the key is the answer, as Jinja would find it, and
    is read at once (the raise was a sixth of the routing step's Python, py-spy)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_NAMES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


class Templates:
    """The one sandboxed environment, loading files from `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._env = _Sandbox(
            loader=FileSystemLoader(directory),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            finalize=_finalize,
        )
        self._env.filters.update(FILTERS)
        self._files: dict[str, CompiledTemplate] = {}
        # each template string compiled so far, with its reads: rules repeat the same templates
        # ("{{ body.id }}"), and compiling one costs a couple of milliseconds. The Template is
        # shared too (it holds no state of a render; a render error is placed by the rule's
        # name, and found in the traceback by the Template's own filename): each one, with its
        # globals and functions, is some kilobytes, 7 a rule
        self._strings: dict[str, tuple[Template, tuple[NameRead, ...]]] = {}

    def compile_string(self, source: str, *, name: str) -> CompiledTemplate:
        compiled = self._strings.get(source)
        if compiled is None:
            try:
                ast = self._env.parse(source, name, name)
                code = self._env.compile(ast, name, name)
            except TemplateSyntaxError as exc:
                raise TemplateProblem(exc.message or str(exc), line=exc.lineno) from None
            reads = _reads(ast, None) + self._check_references(ast, None, frozenset())
            compiled = self._strings[source] = (self._template(code), reads)
        template, reads = compiled
        return CompiledTemplate(name=name, template=template, reads=reads)

    @staticmethod
    def render_plain(source: str) -> str:
        """What a template without markup ({{, {%, {#) renders to, without compiling it: the
        text, line ends as Jinja's lexer writes them, less one trailing newline."""
        text = "\n".join(newline_re.split(source)[::2])
        return text[:-1] if text.endswith("\n") else text

    def compile_expression(self, source: str, *, name: str) -> CompiledExpression:
        try:
            parser = Parser(self._env, source, name, name, state="variable")
            expr = parser.parse_expression()
            if not parser.stream.eos:
                raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno)
            expr.set_environment(self._env)
            body = [nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)]
            ast = nodes.Template(body, lineno=1)
            ast.set_environment(self._env)
            code = self._env.compile(ast, name, name)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(exc.message or str(exc), line=exc.lineno) from None
        reads = tuple(read for read in _reads(ast, None) if read.name != "result")
        return CompiledExpression(name=name, template=self._template(code), reads=reads)

    def compile_file(self, relpath: str) -> CompiledTemplate:
        return self._compile_file(relpath, frozenset())

    def _compile_file(self, relpath: str, seen: frozenset[str]) -> CompiledTemplate:
        if relpath in self._files:
            return self._files[relpath]
        pure = PurePosixPath(relpath)
        if not relpath or "\\" in relpath or pure.is_absolute() or ".." in pure.parts:
            raise TemplateProblem(
                f"template path {relpath!r} must be relative to the templates directory "
                f"({self.directory}) and stay inside it"
            )
        try:
            source, filename, _ = self._env.loader.get_source(self._env, relpath)  # type: ignore[union-attr]
        except TemplateNotFound:
            if not self.directory.is_dir():
                raise TemplateProblem(
                    f"template file {relpath!r} not found: the templates directory "
                    f"{self.directory.resolve()} does not exist; {TEMPLATES_CHOICE}"
                ) from None
            raise TemplateProblem(
                f"template file {relpath!r} not found (looked under the templates directory "
                f"{self.directory})"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateProblem(f"cannot read template file {relpath!r}: {exc}") from None
        try:
            ast = self._env.parse(source, relpath, filename)
            code = self._env.compile(ast, relpath, filename)
        except TemplateSyntaxError as exc:
            message = exc.message or str(exc)
            raise TemplateProblem(message, line=exc.lineno, template=relpath) from None
        reads = _reads(ast, relpath)
        if relpath not in seen:  # a template may include itself (recursion): check it once
            reads += self._check_references(ast, relpath, seen | {relpath})
        compiled = CompiledTemplate(name=relpath, template=self._template(code), reads=reads)
        self._files[relpath] = compiled
        return compiled

    def _check_references(
        self, ast: nodes.Template, owner: str | None, seen: frozenset[str]
    ) -> tuple[NameRead, ...]:
        """Every statically named include / import / extends must exist and compile now.
        Returns what they read that `ast` does not define for them: an included file sees
        the names of the template that includes it."""
        reads: list[NameRead] = []
        defined = _defined_names(ast)
        for node in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            for ref in _static_names(node.template):  # type: ignore[attr-defined]
                try:
                    compiled = self._compile_file(ref, seen)
                except TemplateProblem as problem:
                    if problem.template is not None:
                        raise
                    if not (isinstance(node, nodes.Include) and node.ignore_missing):
                        raise TemplateProblem(
                            problem.message, line=node.lineno, template=owner
                        ) from None
                    continue
                reads += (read for read in compiled.reads if read.name not in defined)
        return tuple(reads)

    def _template(self, code: Any) -> Template:
        # the globals as a plain dict, not Jinja's ChainMap over the environment's: each render
        # copies them into a new context, and a ChainMap is walked key by key in Python (half
        # of a ticket field's render, bench/micro); the environment's globals never change
        globals_ = dict(self._env.make_globals(None))
        return self._env.template_class.from_code(self._env, code, globals_)


# -- helpers -----------------------------------------------------------------------------------


def _finalize(value: Any) -> Any:
    """JSON null prints as nothing, not "None": an absent value stays absent."""
    return "" if value is None else value


def _reads(ast: nodes.Template, template: str | None) -> tuple[NameRead, ...]:
    """The names `ast` reads without defining them, at their first line, leaving out those it
    tests with `is defined` / `is undefined`: a template shared by contexts asks that way
    whether its context holds a name (the http provider's `ticket`, say)."""
    undeclared = meta.find_undeclared_variables(ast)
    tested = {
        test.node.name
        for test in ast.find_all(nodes.Test)
        if test.name in ("defined", "undefined") and isinstance(test.node, nodes.Name)
    }
    lines: dict[str, int] = {}
    _first_reads(ast, undeclared - tested, frozenset(), lines)
    return tuple(NameRead(name=name, line=line, template=template) for name, line in lines.items())


def _first_reads(
    node: nodes.Node, wanted: set[str], bound: frozenset[str], lines: dict[str, int]
) -> None:
    """The line of the first read of each of `wanted` where no loop, macro or `with` around
    it binds that name (`{% for n in x %}{{ n }}` does not read the outer `n`)."""
    if isinstance(node, nodes.Name):
        if node.ctx == "load" and node.name in wanted and node.name not in bound:
            lines.setdefault(node.name, node.lineno)
        return
    inner = bound
    if isinstance(node, nodes.For):
        _first_reads(node.iter, wanted, bound, lines)  # evaluated before the loop binds
        inner = bound | _stored(node.target) | {"loop"}
        children = [*node.body, *node.else_, *([node.test] if node.test else [])]
    elif isinstance(node, nodes.Macro | nodes.CallBlock):
        for default in node.defaults:
            _first_reads(default, wanted, bound, lines)
        inner = bound | {arg.name for arg in node.args} | {"caller", "varargs", "kwargs"}
        children = list(node.body)
        if isinstance(node, nodes.CallBlock):
            _first_reads(node.call, wanted, bound, lines)
    elif isinstance(node, nodes.With):
        for value in node.values:
            _first_reads(value, wanted, bound, lines)
        inner = bound | {name for target in node.targets for name in _stored(target)}
        children = list(node.body)
    else:
        children = list(node.iter_child_nodes())
    for child in children:
        _first_reads(child, wanted, inner, lines)


def _stored(target: nodes.Node) -> frozenset[str]:
    return frozenset(node.name for node in target.find_all(nodes.Name)) | (
        {target.name} if isinstance(target, nodes.Name) else set()
    )


def _defined_names(ast: nodes.Template) -> set[str]:
    """Every name `ast` defines anywhere: what a file it includes may read."""
    names = {node.name for node in ast.find_all(nodes.Name) if node.ctx in ("store", "param")}
    names.update(node.name for node in ast.find_all(nodes.Macro))
    names.update(node.target for node in ast.find_all(nodes.Import))
    for node in ast.find_all(nodes.FromImport):
        names.update(name if isinstance(name, str) else name[1] for name in node.names)
    return names


def _static_names(node: nodes.Node) -> list[str]:
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, nodes.Tuple | nodes.List):
        return [name for item in node.items for name in _static_names(item)]
    return []


def _render_error(exc: Exception, name: str, filename: str | None) -> RenderError:
    line = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:  # the innermost frame of this template is where it failed
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, FilterError | UndefinedError):
        message = str(exc)
    elif isinstance(exc, TemplateNotFound):
        message = f"template {exc.name!r} not found"
    elif isinstance(exc, TemplateSyntaxError):
        message = f"syntax error in {exc.name}, line {exc.lineno}: {exc.message}"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return RenderError(template=name, line=line, message=message)
