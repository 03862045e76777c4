"""The sandboxed Jinja environment (DESIGN §2.4): compiling templates, expressions and files.

Templates come only from the configuration and the templates directory; payload values reach
them as data in the context and are never compiled. Jinja's errors stay here: compiling raises
`TemplateProblem` (with the template file and line, turned into config `Problem`s by
actions.py), rendering raises `RenderError` naming the template and the line inside it.
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
    nodes,
)
from jinja2.lexer import newline_re
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bridge.exceptions import RenderError
from bridge.rendering.filters import FILTERS, FilterError


class TemplateProblem(Exception):
    """A template that cannot be compiled. `template` is the file (relative to the templates
    directory) the problem is in, None when it is in the source given to compile_string."""

    def __init__(self, message: str, *, line: int | None = None, template: str | None = None):
        self.message = message
        self.line = line
        self.template = template
        super().__init__(f"{template or '<string>'}:{line or '?'}: {message}")


@dataclass(frozen=True, kw_only=True)
class CompiledTemplate:
    name: str  # the path under the templates directory, or the caller's name for a string
    template: Template = field(repr=False, compare=False)

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            return self.template.render(context)
        except Exception as exc:
            raise _render_error(exc, self.name, self.template.filename) from None


@dataclass(frozen=True, kw_only=True)
class CompiledExpression:
    name: str
    template: Template = field(repr=False, compare=False)

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


class Templates:
    """The one sandboxed environment, loading files from `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(directory),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            finalize=_finalize,
        )
        self._env.filters.update(FILTERS)
        self._files: dict[str, CompiledTemplate] = {}
        # the code of each template string compiled so far: rules repeat the same templates
        # ("{{ body.id }}"), and compiling one costs a couple of milliseconds
        self._codes: dict[str, Any] = {}

    def compile_string(self, source: str, *, name: str) -> CompiledTemplate:
        code = self._codes.get(source)
        if code is None:
            try:
                ast = self._env.parse(source, name, name)
                code = self._env.compile(ast, name, name)
            except TemplateSyntaxError as exc:
                raise TemplateProblem(exc.message or str(exc), line=exc.lineno) from None
            self._check_references(ast, None, frozenset())
            self._codes[source] = code
        return CompiledTemplate(name=name, template=self._template(code))

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
            code = self._env.compile(nodes.Template(body, lineno=1), name, name)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(exc.message or str(exc), line=exc.lineno) from None
        return CompiledExpression(name=name, template=self._template(code))

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
        if relpath not in seen:  # a template may include itself (recursion): check it once
            self._check_references(ast, relpath, seen | {relpath})
        compiled = CompiledTemplate(name=relpath, template=self._template(code))
        self._files[relpath] = compiled
        return compiled

    def _check_references(
        self, ast: nodes.Template, owner: str | None, seen: frozenset[str]
    ) -> None:
        """Every statically named include / import / extends must exist and compile now."""
        for node in ast.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
            for ref in _static_names(node.template):  # type: ignore[attr-defined]
                try:
                    self._compile_file(ref, seen)
                except TemplateProblem as problem:
                    if problem.template is not None:
                        raise
                    if not (isinstance(node, nodes.Include) and node.ignore_missing):
                        raise TemplateProblem(
                            problem.message, line=node.lineno, template=owner
                        ) from None

    def _template(self, code: Any) -> Template:
        return self._env.template_class.from_code(self._env, code, self._env.make_globals(None))


# -- helpers -----------------------------------------------------------------------------------


def _finalize(value: Any) -> Any:
    """JSON null prints as nothing, not "None": an absent value stays absent."""
    return "" if value is None else value


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
