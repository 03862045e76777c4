"""The loaded service: configuration compiled into sources, rules and providers.

`load_service` is what `serve`, `worker`, `check` and `try` all start from: it loads the YAML,
compiles every condition, expression and template, builds the verifiers and the providers, and
raises one ConfigError carrying every problem found, so a bad configuration never starts.
What can be compiled is compiled even when other parts are wrong (a rule naming an unknown
provider, a provider with a schema problem): one run of `check` reports every problem.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bridge.config import Config, RuleConfig, draft_config
from bridge.config.model import Locations
from bridge.exceptions import ConfigError, Problem
from bridge.providers.base import Provider
from bridge.providers.registry import build_providers
from bridge.rendering.actions import EVENT_CONTEXT, CompiledTicket, compile_ticket, name_problems
from bridge.rendering.templates import CompiledExpression, TemplateProblem, Templates
from bridge.routing.conditions import compile_condition
from bridge.routing.matcher import MatchableRule, Matcher
from bridge.sources.forwarded import TrustedProxies, parse_network
from bridge.sources.intake import CompiledSource, compile_sources


@dataclass(frozen=True, kw_only=True)
class CompiledRule:
    config: RuleConfig
    ticket: CompiledTicket


@dataclass(frozen=True, kw_only=True)
class Service:
    config: Config
    templates: Templates
    sources: Mapping[str, CompiledSource]  # by name
    rules: Mapping[str, CompiledRule]  # by name
    matcher: Matcher
    providers: Mapping[str, Provider]
    proxies: TrustedProxies

    def source_for_path(self) -> dict[str, CompiledSource]:
        return {source.config.path: source for source in self.sources.values()}


def _predicate(expression: CompiledExpression) -> Any:
    def holds(context: Mapping[str, Any]) -> bool:
        return bool(expression.evaluate(context))

    return holds


def load_service(
    rules_dir: Path,
    templates_dir: Path,
    environ: Mapping[str, str],
    client: httpx.AsyncClient,
    *,
    to_run: bool = False,
) -> Service:
    """Raise ConfigError with every problem, or return the service ready to run. `to_run`:
    for a process that runs it for long (serve, worker, a reload), which gets back what only
    the load needed: the lines of the configuration's inner paths, and the freed heap."""
    with _collector_paused():
        service = _load_service(rules_dir, templates_dir, environ, client)
    if to_run:
        if isinstance(service.config.locations, Locations):  # as loaded (tests build dicts)
            service.config.locations.keep_entries_only()
        _give_back_freed_memory()
    return service


def _give_back_freed_memory() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim; elsewhere
    nothing): the parse of 10,000 rules leaves some 10 MB freed that the process would
    otherwise keep for good (bench match: the worker's RSS against 10 rules)."""
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None).malloc_trim(0)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading 10,000 rules makes millions of objects and no garbage cycles worth finding:
    the cyclic collector's passes over them were a third of the load time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_service(
    rules_dir: Path, templates_dir: Path, environ: Mapping[str, str], client: httpx.AsyncClient
) -> Service:
    draft = draft_config(rules_dir, templates_dir, environ)
    if draft.config is None:
        raise ConfigError(list(draft.problems))
    config = draft.config  # with problems, only the entries that could be built: never run
    templates = Templates(templates_dir)
    problems: list[Problem] = list(draft.problems)
    sources = compile_sources(config, templates, problems)
    rules: dict[str, CompiledRule] = {}
    matchable: list[MatchableRule] = []
    for rule in config.rules:
        condition = compile_condition(
            rule.when, at=rule.doc_path + ("when",), config=config, problems=problems
        )
        predicate = None
        if rule.if_expr:
            predicate = _compile_if(rule, config, templates, problems)
        ticket = compile_ticket(rule, config=config, templates=templates, problems=problems)
        rules[rule.name] = CompiledRule(config=rule, ticket=ticket)
        matchable.append(
            MatchableRule(
                name=rule.name,
                sources=rule.sources,
                condition=condition,
                predicate=predicate,
                continue_=rule.continue_,
            )
        )
    defaults = {
        name: source.default_rule for name, source in config.sources.items() if source.default_rule
    }
    providers = build_providers(config, templates, client, problems)
    proxies = _trusted_proxies(config, problems)
    if problems:  # before the Matcher, which refuses a missing default rule or a repeated name
        raise ConfigError(sorted(set(problems)))
    return Service(
        config=config,
        templates=templates,
        sources=sources,
        rules=rules,
        matcher=Matcher(matchable, default_rules=defaults),
        providers=providers,
        proxies=proxies,
    )


def _compile_if(
    rule: RuleConfig, config: Config, templates: Templates, problems: list[Problem]
) -> Any:
    """The predicate of a rule's `if` expression, which sees what its conditions see."""
    path = rule.doc_path + ("if",)
    at = config.locate(path)
    try:
        expression = templates.compile_expression(
            str(rule.if_expr), name=f"{at.file}:{at.line} {at.path}"
        )
    except TemplateProblem as exc:
        shown = config.show(rule.if_expr, path)
        message = f"{shown} is not an expression: {exc.message}"
        problems.append(Problem(file=at.file, line=at.line, path=at.path, message=message))
        return None
    problems += name_problems(expression.reads, context=EVENT_CONTEXT, at=at, templates=templates)
    return _predicate(expression)


def _trusted_proxies(config: Config, problems: list[Problem]) -> TrustedProxies:
    networks = []
    for index, value in enumerate(config.defaults.trusted_proxies):
        try:
            networks.append(parse_network(value))
        except ValueError:
            path = ("defaults", "trusted_proxies", index)
            message = f"{config.show(value, path)} is not an IP address or network"
            at = config.locate(path)
            problems.append(Problem(file=at.file, line=at.line, path=at.path, message=message))
    return TrustedProxies(networks)


__all__ = ["CompiledRule", "Service", "load_service"]
